// KafkaJS transactions, driven by tests/clients/test_transactions.py.
//
//   node transactions.js '{"brokers": [...], "topic": "...", "transactionalId": "...", "group": "..."}'
//
// Creates the topic, commits a transaction of two records, aborts one of
// one record (sent before the abort), commits one more, then reads the
// topic with a read_committed consumer (KafkaJS's default). Prints one JSON
// line: {"committed": [values read]}; or {"error": name, "message": ...}.
const { Kafka, logLevel } = require("kafkajs");

const config = JSON.parse(process.argv[2]);
const kafka = new Kafka({
  clientId: "streamhouse-kafkajs-suite",
  brokers: config.brokers,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 5 },
  logLevel: logLevel.NOTHING,
});

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: config.topic, numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();

  const producer = kafka.producer({
    transactionalId: config.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  for (const [values, commit] of [[["c1", "c2"], true], [["a1"], false], [["c3"], true]]) {
    const transaction = await producer.transaction();
    await transaction.send({ topic: config.topic, messages: values.map((value) => ({ value })) });
    if (commit) {
      await transaction.commit();
    } else {
      await transaction.abort();
    }
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: config.group, sessionTimeout: 10000 });
  await consumer.connect();
  await consumer.subscribe({ topic: config.topic, fromBeginning: true });
  const committed = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${committed.length} of 3 in 30 s`)), 30000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          committed.push(message.value.toString());
          if (committed.length === 3) {
            clearTimeout(timer);
            // Anything aborted would arrive within a few more fetches.
            setTimeout(resolve, 2000);
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  console.log(JSON.stringify({ committed }));
}

main().catch((error) => {
  console.log(JSON.stringify({ error: error.name, message: error.message }));
  process.exit(0);
});
