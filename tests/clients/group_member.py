"""A consumer group member in a process of its own, for tests that SIGKILL
or restart one: it joins GROUP on TOPIC and prints its partitions (space
separated, one line) whenever its assignment changes. SIGTERM closes the
consumer and exits 0.

usage: group_member.py BOOTSTRAP GROUP TOPIC [NAME=VALUE ...]
"""

import signal
import sys

from confluent_kafka import Consumer


def main(bootstrap: str, group: str, topic: str, settings: list[str]) -> None:
    stopping = False

    def stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    config = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    config.update(setting.split("=", 1) for setting in settings)
    consumer = Consumer(config)
    consumer.subscribe([topic])
    printed = None
    while not stopping:
        consumer.poll(0.05)
        partitions = sorted(tp.partition for tp in consumer.assignment())
        if partitions != printed:
            print(" ".join(map(str, partitions)), flush=True)
            printed = partitions
    consumer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
