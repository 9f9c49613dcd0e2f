"""Administration as operators' tools call it: kafka-python's
delete_group_offsets (OffsetDelete), describe_producers (DescribeProducers)
and describe_log_dirs (DescribeLogDirs), and confluent-kafka's
list_consumer_groups filtered by group type (ListGroups v5) and
describe_cluster (DescribeCluster)."""

from confluent_kafka import ConsumerGroupType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
from kafka import KafkaAdminClient
from kafka import TopicPartition as KTopicPartition
from kafka import errors as kafka_errors

from support import (
    CLIENT_TIMEOUT,
    Rec,
    confluent_config,
    new_consumer,
    new_producer,
    produce_all,
    unique_name,
)
from groups import PARTITIONS, commit_some, create_topic


def kafka_python_admin(server) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=server.bootstrap, request_timeout_ms=int(CLIENT_TIMEOUT * 1000)
    )


def committed_partitions(server, group_id: str, topic: str) -> set[int]:
    consumer = new_consumer(server.bootstrap, group_id)
    try:
        offsets = consumer.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=CLIENT_TIMEOUT
        )
    finally:
        consumer.close()
    return {tp.partition for tp in offsets if tp.offset >= 0}


def test_kafka_python_deletes_the_offsets_of_an_empty_group(server):
    topic = create_topic(server, "delete-offsets")
    group_id = unique_name("delete-offsets")
    producer = new_producer(server.bootstrap)
    for partition in range(PARTITIONS):
        produce_all(producer, topic, [Rec(None, b"%d" % i) for i in range(3)], partition)
    commit_some(server, topic, group_id, PARTITIONS * 3)
    assert committed_partitions(server, group_id, topic) == set(range(PARTITIONS))

    admin = kafka_python_admin(server)
    try:
        results = admin.delete_group_offsets(
            group_id, [KTopicPartition(topic, 0), KTopicPartition(topic, 1)]
        )
        assert all(error is kafka_errors.NoError for error in results.values()), results
    finally:
        admin.close()
    assert committed_partitions(server, group_id, topic) == set(range(2, PARTITIONS))


def test_kafka_python_describes_producers_and_confluent_lists_groups_by_type(server):
    topic = create_topic(server, "producers")
    transactional = Producer(
        confluent_config(server.bootstrap, **{"transactional.id": unique_name("describe")})
    )
    transactional.init_transactions(CLIENT_TIMEOUT)
    transactional.begin_transaction()
    transactional.produce(topic, b"open", partition=0)
    transactional.flush(CLIENT_TIMEOUT)

    admin = kafka_python_admin(server)
    try:
        states = admin.describe_producers([KTopicPartition(topic, 0)])
    finally:
        admin.close()
    (state,) = states.values()
    (producer,) = state.active_producers
    assert producer.current_transaction_start_offset == 0, producer
    assert producer.last_sequence == 0, producer
    transactional.abort_transaction(CLIENT_TIMEOUT)

    group_id = unique_name("typed")
    produce_all(new_producer(server.bootstrap), topic, [Rec(None, b"plain")], 0)
    commit_some(server, topic, group_id, 1)
    confluent = AdminClient(confluent_config(server.bootstrap))
    classic = confluent.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result(
        timeout=CLIENT_TIMEOUT
    )
    listed = {g.group_id: g for g in classic.valid}
    assert group_id in listed
    assert listed[group_id].type == ConsumerGroupType.CLASSIC
    consumer_protocol = confluent.list_consumer_groups(
        types={ConsumerGroupType.CONSUMER}
    ).result(timeout=CLIENT_TIMEOUT)
    assert group_id not in {g.group_id for g in consumer_protocol.valid}


def test_kafka_python_describes_log_dirs_with_the_bytes_stored(server):
    topic = create_topic(server, "log-dirs")
    producer = new_producer(server.bootstrap)
    produce_all(producer, topic, [Rec(None, b"x" * 1000) for _ in range(20)], 0)
    admin = kafka_python_admin(server)
    try:
        answers = admin.describe_log_dirs({topic: [0, 1]})
    finally:
        admin.close()
    assert answers, "every broker answers"
    for answer in answers:
        (log_dir,) = answer["log_dirs"]
        assert log_dir["error_code"] == 0, answer
        (described,) = log_dir["topics"]
        sizes = {p["partition_index"]: p["partition_size"] for p in described["partitions"]}
        assert sizes[1] == 0, answer
        # Twenty records of 1000 bytes, compressed into the object store.
        assert sizes[0] > 0, answer


def test_confluent_describes_the_cluster(server):
    admin = AdminClient(confluent_config(server.bootstrap))
    described = admin.describe_cluster(include_authorized_operations=True).result(
        timeout=CLIENT_TIMEOUT
    )
    metadata = admin.list_topics(timeout=CLIENT_TIMEOUT)
    assert described.cluster_id == metadata.cluster_id
    assert {node.port for node in described.nodes} == {
        broker.port for broker in metadata.brokers.values()
    }
    assert described.controller is not None


def test_broker_ids_are_small_and_address_the_agent(server):
    """Node ids are allocated in the metadata store: small, so that tools
    addressing broker 0, 1, … (DescribeConfigs of a BROKER resource) find
    the agents, and the same across a restart of the same agent id."""
    admin = AdminClient(confluent_config(server.bootstrap))
    (node,) = admin.describe_cluster().result(timeout=CLIENT_TIMEOUT).nodes
    # Every agent started in this run has an id of its own, from 0 on.
    assert 0 <= node.id < 1000, node
    resource = ConfigResource(ResourceType.BROKER, str(node.id))
    (future,) = admin.describe_configs([resource]).values()
    assert future.result(timeout=CLIENT_TIMEOUT), "the broker's configs"
    assert server.stop() == 0
    server.start()
    admin = AdminClient(confluent_config(server.bootstrap))
    (again,) = admin.describe_cluster().result(timeout=CLIENT_TIMEOUT).nodes
    assert again.id == node.id, "kept across a restart"
