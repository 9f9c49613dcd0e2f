"""A consumer group member in a process of its own, for tests that SIGKILL
or restart one: it joins GROUP on TOPIC and prints one JSON line for each
rebalance callback librdkafka makes, with the partitions it hands over and
the group generation the member is in then:

    {"event": "assign" | "revoke", "partitions": [0, 2], "generation": 3}

SIGTERM closes the consumer and exits 0.

usage: group_member.py BOOTSTRAP GROUP TOPIC [NAME=VALUE ...]
"""

import json
import signal
import struct
import sys

from confluent_kafka import Consumer

# librdkafka's serialized group metadata (rd_kafka_consumer_group_metadata_write,
# what confluent-kafka's consumer_group_metadata() returns): this magic, then
# the generation id as a native int32, then the group and member ids.
_METADATA_MAGIC = b"CGMDv2:"


def generation(consumer: Consumer) -> int:
    metadata = consumer.consumer_group_metadata()
    if not metadata.startswith(_METADATA_MAGIC):
        raise RuntimeError(f"unexpected group metadata {metadata[:16]!r}")
    return struct.unpack_from("=i", metadata, len(_METADATA_MAGIC))[0]


def main(bootstrap: str, group: str, topic: str, settings: list[str]) -> None:
    stopping = False

    def stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    config = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    config.update(setting.split("=", 1) for setting in settings)
    consumer = Consumer(config)

    def report(event: str):
        def callback(member: Consumer, partitions):
            line = {
                "event": event,
                "partitions": sorted(tp.partition for tp in partitions),
                "generation": generation(member),
            }
            print(json.dumps(line), flush=True)

        return callback

    consumer.subscribe([topic], on_assign=report("assign"), on_revoke=report("revoke"))
    while not stopping:
        consumer.poll(0.05)
    consumer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
