"""A confluent-kafka producer that writes numbered records to a topic until
SIGTERM, then flushes and exits 0 when every record got a delivery report.

Each acknowledged record appends "PARTITION OFFSET NUMBER TIME" to ACK_FILE
and each failed one "PARTITION NUMBER ERROR" to ACK_FILE.failed, both line
by line so the test can follow progress; TIME is time.monotonic() when the
report arrived, comparable with the test's own clock. The last line on
stdout is the count of records produced. NAME=VALUE settings override the
producer configuration (enable.idempotence=true, say).

usage: crash_producer.py BOOTSTRAP TOPIC PARTITIONS ACK_FILE [NAME=VALUE ...]
"""

import signal
import sys
import time

from confluent_kafka import Producer

# Records are paced so that a few seconds of run give a few thousand records.
PAUSE_SECONDS = 0.001


def main(bootstrap: str, topic: str, partitions: int, ack_path: str, settings: list[str]) -> int:
    stopping = False

    def stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        # One request in flight per connection keeps the acknowledged records
        # of a partition in order even when a request is retried.
        "max.in.flight.requests.per.connection": 1,
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": 120000,
        "retry.backoff.ms": 100,
        "retry.backoff.max.ms": 500,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 500,
        "socket.timeout.ms": 10000,
    }
    config.update(setting.split("=", 1) for setting in settings)
    producer = Producer(config)
    with (
        open(ack_path, "w", buffering=1) as acks,
        open(ack_path + ".failed", "w", buffering=1) as failures,
    ):

        def report(error, message):
            number = int(message.value())
            if error is None:
                acks.write(
                    f"{message.partition()} {message.offset()} {number} {time.monotonic():.3f}\n"
                )
            else:
                failures.write(f"{message.partition()} {number} {error}\n")

        produced = 0
        while not stopping:
            try:
                producer.produce(
                    topic,
                    value=b"%d" % produced,
                    partition=produced % partitions,
                    on_delivery=report,
                )
                produced += 1
            except BufferError:
                pass
            producer.poll(PAUSE_SECONDS)
        remaining = producer.flush(150)
    print(produced, flush=True)
    return 0 if remaining == 0 else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]))
