// KafkaJS over SASL_SSL, driven by tests/clients/test_security.py.
//
//   node sasl_ssl.js '{"brokers": [...], "ca": "ca.crt", "mechanism": "scram-sha-256",
//                      "username": "...", "password": "...", "topic": "...", "group": "...",
//                      "mode": "round-trip" | "login"}'
//
// Prints one JSON line: what it produced, consumed, and what admin calls
// answered; or {"error": name, "message": ...} when something failed.
const fs = require("fs");
const { Kafka, logLevel } = require("kafkajs");

const config = JSON.parse(process.argv[2]);
const kafka = new Kafka({
  clientId: "streamhouse-kafkajs-suite",
  brokers: config.brokers,
  ssl: { ca: [fs.readFileSync(config.ca, "utf-8")] },
  sasl: { mechanism: config.mechanism, username: config.username, password: config.password },
  connectionTimeout: 5000,
  authenticationTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: config.mode === "login" ? 0 : 5 },
  logLevel: logLevel.NOTHING,
});

const COUNT = 10;

async function roundTrip() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: config.topic, numPartitions: 2 }], waitForLeaders: true });
  const metadata = await admin.fetchTopicMetadata({ topics: [config.topic] });

  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < COUNT; i++) {
    messages.push({ key: `key-${i % 3}`, value: `value-${i}`, headers: { seq: `${i}` } });
  }
  await producer.send({ topic: config.topic, acks: -1, messages });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: config.group, sessionTimeout: 10000 });
  await consumer.connect();
  await consumer.subscribe({ topic: config.topic, fromBeginning: true });
  const consumed = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${consumed.length} of ${COUNT} in 30 s`)), 30000);
    consumer
      .run({
        autoCommit: true,
        eachMessage: async ({ partition, message }) => {
          consumed.push({
            partition,
            key: message.key && message.key.toString(),
            value: message.value && message.value.toString(),
            seq: message.headers.seq && message.headers.seq.toString(),
          });
          if (consumed.length === COUNT) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.commitOffsets([]).catch(() => {});
  await consumer.disconnect();
  const offsets = await admin.fetchOffsets({ groupId: config.group, topics: [config.topic] });
  await admin.disconnect();
  return {
    partitions: metadata.topics[0].partitions.length,
    consumed,
    committed: offsets[0].partitions.map((p) => ({ partition: p.partition, offset: Number(p.offset) })),
  };
}

async function login() {
  const admin = kafka.admin();
  await admin.connect();
  const topics = await admin.listTopics();
  await admin.disconnect();
  return { topics };
}

(config.mode === "login" ? login() : roundTrip())
  .then((result) => {
    console.log(JSON.stringify(result));
    process.exit(0);
  })
  .catch((error) => {
    console.log(JSON.stringify({ error: error.name, message: String(error.message) }));
    process.exit(0);
  });
