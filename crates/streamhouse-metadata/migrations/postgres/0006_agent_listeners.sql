-- The Kafka listeners of each agent, as `PROTOCOL:PORT` pairs separated by
-- commas (`PLAINTEXT:9092,SASL_SSL:9094`), so that Metadata can answer each
-- client with the port of the listener it connected through. Empty for
-- agents that registered before listeners existed: their `port` is PLAINTEXT.

ALTER TABLE agents ADD COLUMN listeners TEXT NOT NULL DEFAULT '';
