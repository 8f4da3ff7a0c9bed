from confluent_kafka import Consumer, Producer

from streams.clients import consumer_config


def test_shared_fixtures_produce_and_consume(kafka_bootstrap, unique_topic, chdb_url):
    topic = unique_topic("fx", partitions=3)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, b"hello")
    assert producer.flush(10) == 0
    consumer = Consumer(consumer_config(kafka_bootstrap, "g-fx", read_committed=False))
    consumer.subscribe([topic])
    got = None
    for _ in range(60):
        msg = consumer.poll(1)
        if msg is not None and not msg.error():
            got = msg.value()
            break
    consumer.close()
    assert got == b"hello"
    assert chdb_url.startswith("chdb:///")
