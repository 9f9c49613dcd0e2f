// KafkaJS scenarios, driven by tests/clients/test_kafkajs.py.
//
//   node suite.js '{"scenario": "...", "brokers": [...], ...}'
//
// Each scenario drives KafkaJS as an application would and prints one JSON
// line with what the client saw (records, assignments, admin answers);
// the Python side decides whether that is right. On failure it prints
// {"error": name, "message": ..., "stack": ...}. Keys, values and header
// values travel base64-encoded (null stays null).
//
// KafkaJS has GZIP built in; Snappy, LZ4 and ZSTD come from codec packages
// registered in CompressionCodecs, as KafkaJS's documentation describes.
const { AssignerProtocol, CompressionCodecs, CompressionTypes, ConfigResourceTypes, Kafka, logLevel } =
  require("kafkajs");
const SnappyCodec = require("kafkajs-snappy");
const LZ4Codec = require("@2l/kafkajs-lz4");
const zstd = require("@mongodb-js/zstd");
const fs = require("fs");

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec;
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  compress: (encoder) => zstd.compress(encoder.buffer),
  decompress: (buffer) => zstd.decompress(buffer),
});

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

const config = JSON.parse(process.argv[2]);
const kafka = new Kafka({
  clientId: "streamhouse-kafkajs-suite",
  brokers: config.brokers,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 5, initialRetryTime: 100 },
  logLevel: logLevel.NOTHING,
});

// How long any one wait in a scenario may take.
const WAIT_MS = 30000;

const b64 = (buffer) => (buffer == null ? null : Buffer.from(buffer).toString("base64"));
const unb64 = (text) => (text == null ? null : Buffer.from(text, "base64"));

async function waitFor(condition, describe) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await condition()) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${WAIT_MS} ms: ${describe()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// KafkaJS takes headers as an object; a key sent several times is an array.
function kafkajsHeaders(pairs) {
  const headers = {};
  for (const [key, value] of pairs) {
    const buffer = unb64(value);
    if (key in headers) {
      headers[key] = [].concat(headers[key], buffer);
    } else {
      headers[key] = buffer;
    }
  }
  return headers;
}

function headerPairs(headers) {
  const pairs = [];
  for (const [key, value] of Object.entries(headers || {})) {
    for (const one of [].concat(value)) {
      pairs.push([key, b64(one)]);
    }
  }
  return pairs;
}

function consumedRecord(topic, partition, message) {
  return {
    topic,
    partition,
    offset: Number(message.offset),
    key: b64(message.key),
    value: b64(message.value),
    headers: headerPairs(message.headers),
    timestamp: Number(message.timestamp),
  };
}

async function createTopic(topic, numPartitions) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

// A group member that records each assignment it is given (GROUP_JOIN)
// and every record it reads.
class Member {
  constructor(name, groupId, topic) {
    this.name = name;
    this.topic = topic;
    this.joins = [];
    this.records = [];
    this.fetches = 0;
    this.consumer = kafka.consumer({
      groupId,
      sessionTimeout: 10000,
      rebalanceTimeout: 20000,
      heartbeatInterval: 200,
      maxWaitTimeInMs: 100,
      retry: { retries: 5, initialRetryTime: 100 },
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      this.joins.push({
        memberId: payload.memberId,
        leaderId: payload.leaderId,
        isLeader: payload.isLeader,
        partitions: [...(payload.memberAssignment[topic] || [])].sort((a, b) => a - b),
      });
    });
    this.consumer.on(this.consumer.events.FETCH, () => {
      this.fetches += 1;
    });
  }

  async start() {
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    this.crashed = null;
    this.consumer
      .run({
        eachMessage: async ({ topic, partition, message }) => {
          this.records.push(consumedRecord(topic, partition, message));
        },
      })
      .catch((error) => {
        this.crashed = error;
      });
    this.consumer.on(this.consumer.events.CRASH, ({ payload }) => {
      this.crashed = payload.error;
    });
  }

  get partitions() {
    return this.joins.length ? this.joins[this.joins.length - 1].partitions : [];
  }

  get memberId() {
    return this.joins.length ? this.joins[this.joins.length - 1].memberId : null;
  }

  check() {
    if (this.crashed) {
      throw new Error(`member ${this.name} crashed: ${this.crashed.message}`);
    }
  }

  async stop() {
    await this.consumer.disconnect();
  }
}

// Waits until the members' latest assignments cover every partition once,
// each member has joined at least `joins[i]` times, and none is empty.
async function waitForSplit(members, partitions, joins) {
  const describe = () =>
    JSON.stringify(members.map((m) => ({ name: m.name, joins: m.joins.length, partitions: m.partitions })));
  await waitFor(() => {
    members.forEach((m) => m.check());
    const owned = members.map((m) => m.partitions);
    const all = owned.flat().sort((a, b) => a - b);
    return (
      members.every((m, i) => m.joins.length >= joins[i]) &&
      owned.every((o) => o.length > 0) &&
      JSON.stringify(all) === JSON.stringify([...Array(partitions).keys()])
    );
  }, describe);
  return members.map((m) => ({ name: m.name, memberId: m.memberId, partitions: m.partitions }));
}

async function produceRound(producer, topic, partitions, perPartition, label) {
  const messages = [];
  for (let i = 0; i < perPartition; i++) {
    for (let partition = 0; partition < partitions; partition++) {
      messages.push({ partition, key: `k-${partition}`, value: `${label}-${partition}-${i}` });
    }
  }
  await producer.send({ topic, acks: -1, messages });
}

async function committedOffsets(admin, groupId, topic) {
  const [answer] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return answer.partitions
    .map(({ partition, offset }) => [partition, Number(offset)])
    .sort((a, b) => a[0] - b[0]);
}

const scenarios = {
  // Produces config.records to one topic per codec with one send each
  // (so each partition gets one batch in that codec), then reads every
  // topic back with one consumer.
  async codecs() {
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const produced = {};
    for (const [codec, topic] of Object.entries(config.topics)) {
      await createTopic(topic, config.partitions);
      const answer = await producer.send({
        topic,
        acks: -1,
        compression: CODECS[codec],
        messages: config.records.map((r) => ({
          partition: r.partition,
          key: unb64(r.key),
          value: unb64(r.value),
          headers: kafkajsHeaders(r.headers),
          timestamp: String(r.timestamp),
        })),
      });
      produced[codec] = answer
        .map(({ partition, errorCode, baseOffset }) => ({ partition, errorCode, baseOffset: Number(baseOffset) }))
        .sort((a, b) => a.partition - b.partition);
    }
    await producer.disconnect();

    const expected = Object.keys(config.topics).length * config.records.length;
    const consumer = kafka.consumer({ groupId: config.group, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topics: Object.values(config.topics), fromBeginning: true });
    const consumed = [];
    let crashed = null;
    consumer
      .run({
        eachMessage: async ({ topic, partition, message }) => {
          consumed.push(consumedRecord(topic, partition, message));
        },
      })
      .catch((error) => {
        crashed = error;
      });
    await waitFor(() => {
      if (crashed) {
        throw crashed;
      }
      return consumed.length >= expected;
    }, () => `consumed ${consumed.length} of ${expected} records`);
    await consumer.disconnect();
    return { produced, consumed };
  },

  // A group of two over four partitions, then a third member joins;
  // every record is read by the member owning its partition. Then the
  // admin client describes the group and fetches its committed offsets.
  async group() {
    const { topic, group, partitions } = config;
    await createTopic(topic, partitions);
    const producer = kafka.producer();
    await producer.connect();
    const admin = kafka.admin();
    await admin.connect();
    const members = [new Member("a", group, topic), new Member("b", group, topic)];
    const result = {};
    try {
      for (const member of members) {
        await member.start();
      }
      // Records come once the two members share the partitions, so each
      // is read by the member that owns its partition.
      result.two = await waitForSplit(members, partitions, [1, 1]);
      await produceRound(producer, topic, partitions, 8, "round1");
      const readAll = (count) => () => members.reduce((n, m) => n + m.records.length, 0) >= count;
      const describeRead = () => `read ${members.map((m) => m.records.length)}`;
      await waitFor(readAll(8 * partitions), describeRead);
      // Everything read is committed before the third member joins, so
      // the rebalance cannot hand anything out twice.
      await waitFor(
        async () => (await committedOffsets(admin, group, topic)).every(([, offset]) => offset === 8),
        () => "round 1 was not committed",
      );

      const third = new Member("c", group, topic);
      members.push(third);
      await third.start();
      result.three = await waitForSplit(members, partitions, [2, 2, 1]);
      await produceRound(producer, topic, partitions, 4, "round2");
      await waitFor(readAll(12 * partitions), describeRead);
      await waitFor(
        async () => (await committedOffsets(admin, group, topic)).every(([, offset]) => offset === 12),
        async () => `committed ${JSON.stringify(await committedOffsets(admin, group, topic))}`,
      );
      result.committed = await committedOffsets(admin, group, topic);

      const { groups } = await admin.describeGroups([group]);
      result.described = groups.map((g) => ({
        groupId: g.groupId,
        state: g.state,
        protocolType: g.protocolType,
        protocol: g.protocol,
        errorCode: g.errorCode,
        members: g.members.map((m) => ({
          memberId: m.memberId,
          clientId: m.clientId,
          partitions: [...(AssignerProtocol.MemberAssignment.decode(m.memberAssignment).assignment[topic] || [])].sort(
            (a, b) => a - b,
          ),
        })),
      }));
      result.listed = (await admin.listGroups()).groups.filter((g) => g.groupId === group);
      result.records = Object.fromEntries(members.map((m) => [m.name, m.records]));
    } finally {
      for (const member of members) {
        await member.stop();
      }
      await producer.disconnect();
      await admin.disconnect();
    }
    return result;
  },

  // The group of `group` (left empty) is reset to the earliest offsets
  // and a member resumes from there; then more records arrive, the group
  // is reset to the latest offsets and a member reads only what comes
  // after; then the group is deleted. KafkaJS commits -2 / -1 for a reset, which its consumers resolve
  // through their own fromBeginning setting; fetchOffsets with
  // resolveOffsets turns them into the partitions' offsets, as its docs
  // advise. (Each of these admin calls runs a paused consumer that waits
  // out KafkaJS's default 5 s maxWaitTime: it is the client, not the agent.)
  async reset_offsets() {
    const { topic, group, partitions } = config;
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer();
    await producer.connect();
    const result = {};
    try {
      result.before = await committedOffsets(admin, group, topic);
      await admin.resetOffsets({ groupId: group, topic, earliest: true });
      result.afterEarliest = await committedOffsets(admin, group, topic);
      const rereading = new Member("d", group, topic);
      await rereading.start();
      const total = result.before.reduce((n, [, offset]) => n + offset, 0);
      await waitFor(() => {
        rereading.check();
        return rereading.records.length >= total;
      }, () => `re-read ${rereading.records.length} of ${total}`);
      await rereading.stop();
      result.reread = rereading.records;

      await produceRound(producer, topic, partitions, 2, "round3");
      await admin.resetOffsets({ groupId: group, topic, earliest: false });
      const [resolved] = await admin.fetchOffsets({ groupId: group, topics: [topic], resolveOffsets: true });
      result.afterLatest = resolved.partitions
        .map(({ partition, offset }) => [partition, Number(offset)])
        .sort((a, b) => a[0] - b[0]);
      const resuming = new Member("e", group, topic);
      await resuming.start();
      await waitForSplit([resuming], partitions, [1]);
      await produceRound(producer, topic, partitions, 1, "round4");
      await waitFor(() => {
        resuming.check();
        return resuming.records.length >= partitions;
      }, () => `read ${resuming.records.length} of ${partitions}`);
      // Anything before the reset point would have come first; give a
      // stray late record a few more fetches to show up.
      const fetches = resuming.fetches;
      await waitFor(() => resuming.fetches >= fetches + 3, () => "no more fetches");
      await resuming.stop();
      result.resumed = resuming.records;

      // The group, empty again, is deleted with its offsets.
      result.deleted = await admin.deleteGroups([group]);
      result.listedAfterDelete = (await admin.listGroups()).groups.filter((g) => g.groupId === group);
      result.offsetsAfterDelete = await committedOffsets(admin, group, topic);
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }
    return result;
  },

  // Topics created (with a config), described, grown and deleted, their
  // offsets listed and records deleted; the broker's own configs asked for
  // by its node id from Metadata.
  async admin() {
    const admin = kafka.admin();
    await admin.connect();
    const result = {};
    try {
      const [first, second] = config.topics;
      result.created = await admin.createTopics({
        topics: [
          { topic: first, numPartitions: 3, configEntries: [{ name: "retention.ms", value: "3600000" }] },
          { topic: second, numPartitions: 1 },
        ],
        waitForLeaders: true,
      });
      result.createdAgain = await admin.createTopics({ topics: [{ topic: first, numPartitions: 3 }] });
      result.listed = (await admin.listTopics()).filter((t) => config.topics.includes(t)).sort();
      const metadata = await admin.fetchTopicMetadata({ topics: config.topics });
      result.metadata = metadata.topics
        .map((t) => ({
          name: t.name,
          partitions: t.partitions
            .map((p) => ({ partitionId: p.partitionId, leader: p.leader, errorCode: p.partitionErrorCode }))
            .sort((a, b) => a.partitionId - b.partitionId),
        }))
        .sort((a, b) => a.name.localeCompare(b.name));
      const topicConfigs = await admin.describeConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: first, configNames: ["retention.ms", "cleanup.policy"] }],
      });
      result.topicConfigs = topicConfigs.resources.map((r) => ({
        errorCode: r.errorCode,
        resourceName: r.resourceName,
        entries: Object.fromEntries(r.configEntries.map((e) => [e.configName, e.configValue])),
      }));

      // Offsets of a partition with records: by end, by timestamp, and
      // after records are deleted from its start.
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({
        topic: first,
        acks: -1,
        messages: [...Array(6).keys()].map((i) => ({
          partition: 0,
          value: `v${i}`,
          timestamp: String(config.baseTimestamp + 1000 * i),
        })),
      });
      await producer.disconnect();
      const offsets = async () =>
        (await admin.fetchTopicOffsets(first))
          .map(({ partition, low, high }) => [partition, Number(low), Number(high)])
          .sort((a, b) => a[0] - b[0]);
      result.topicOffsets = await offsets();
      result.offsetsByTimestamp = (await admin.fetchTopicOffsetsByTimestamp(first, config.baseTimestamp + 2500))
        .map(({ partition, offset }) => [partition, Number(offset)])
        .sort((a, b) => a[0] - b[0]);
      await admin.deleteTopicRecords({ topic: first, partitions: [{ partition: 0, offset: "4" }] });
      result.offsetsAfterDeleteRecords = await offsets();

      await admin.createPartitions({ topicPartitions: [{ topic: second, count: 2 }] });
      const grown = await admin.fetchTopicMetadata({ topics: [second] });
      result.grownPartitions = grown.topics[0].partitions.length;

      const cluster = await admin.describeCluster();
      result.brokers = cluster.brokers.map((b) => ({ nodeId: b.nodeId, host: b.host, port: b.port }));
      result.controller = cluster.controller;
      const brokerConfigs = await admin.describeConfigs({
        resources: cluster.brokers.map((b) => ({ type: ConfigResourceTypes.BROKER, name: String(b.nodeId) })),
      });
      result.brokerConfigs = brokerConfigs.resources.map((r) => ({
        errorCode: r.errorCode,
        resourceType: r.resourceType,
        resourceName: r.resourceName,
        entries: Object.fromEntries(r.configEntries.map((e) => [e.configName, e.configValue])),
      }));

      await admin.deleteTopics({ topics: config.topics });
      result.listedAfterDelete = (await admin.listTopics()).filter((t) => config.topics.includes(t));
      try {
        await admin.fetchTopicMetadata({ topics: [first] });
        result.describeDeleted = "no error";
      } catch (error) {
        result.describeDeleted = error.type || error.name;
      }
    } finally {
      await admin.disconnect();
    }
    return result;
  },
};

// Written synchronously: process.exit does not wait for a piped stdout.
function print(result) {
  fs.writeSync(1, JSON.stringify(result) + "\n");
}

async function main() {
  const scenario = scenarios[config.scenario];
  if (!scenario) {
    throw new Error(`no scenario ${config.scenario}`);
  }
  print(await scenario());
}

// Exits at once: a KafkaJS consumer left behind by a failure must not keep
// the process alive.
main().then(
  () => process.exit(0),
  (error) => {
    print({ error: error.name, message: error.message, stack: error.stack });
    process.exit(0);
  },
);
