//! Kafka client settings shared by the simulator and the lander.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

/// Where the broker is and any librdkafka property to pass through. As a task's
/// params, a field left out (empty) is taken from Setlist's `kafka` settings
/// ([`KafkaConfig::or`]).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`.
    #[serde(default)]
    pub brokers: String,
    /// The topic of play events.
    #[serde(default)]
    pub topic: String,
    /// Any librdkafka property (`"linger.ms" = "5"`), applied last so it wins.
    #[serde(default, serialize_with = "redacted")]
    pub properties: BTreeMap<String, String>,
}

/// One partition's offsets: `low` is the first still kept, `high` the next to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// The partition these offsets are of.
    pub partition: i32,
    /// The oldest offset the broker still keeps, so the health page can tell what is retained.
    pub low: i64,
    /// The offset the next event will get; `high - low` is how many events are kept.
    pub high: i64,
}

/// Whether a librdkafka property holds a secret (`sasl.password`, `ssl.key.password`,
/// `ssl.keystore.password`, ...), which Debug and `config show` never print.
fn is_secret(property: &str) -> bool {
    ["password", "secret", "key.pem", "token"]
        .iter()
        .any(|s| property.contains(s))
}

/// The properties with their secret values replaced.
fn shown(properties: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    properties
        .iter()
        .map(|(k, v)| {
            let v = if is_secret(k) {
                "[redacted]"
            } else {
                v.as_str()
            };
            (k.as_str(), v)
        })
        .collect()
}

fn redacted<S: serde::Serializer>(p: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&shown(p), s)
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("properties", &shown(&self.properties))
            .finish()
    }
}

impl Default for KafkaConfig {
    /// The local broker of `scripts/kafka.sh` and the topic `plays`.
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:19092".into(),
            topic: "plays".into(),
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Nothing set: every field comes from the settings it is resolved against.
    pub fn unset() -> Self {
        Self {
            brokers: String::new(),
            topic: String::new(),
            properties: BTreeMap::new(),
        }
    }

    /// These settings, with every field left empty taken from `base`, and `base`'s
    /// properties under this one's.
    pub fn or(&self, base: &KafkaConfig) -> KafkaConfig {
        let pick =
            |mine: &String, theirs: &String| if mine.is_empty() { theirs } else { mine }.clone();
        let mut properties = base.properties.clone();
        properties.extend(self.properties.clone());
        KafkaConfig {
            brokers: pick(&self.brokers, &base.brokers),
            topic: pick(&self.topic, &base.topic),
            properties,
        }
    }

    /// A client config with `base` settings, then the pass-through properties.
    pub fn client(&self, base: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in base {
            c.set(*k, *v);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// Each partition of the topic with its low and high watermarks (the first
    /// offset still kept and the offset the next message will get), asking the
    /// broker for at most `timeout`.
    pub async fn watermarks(&self, timeout: Duration) -> anyhow::Result<Vec<Watermarks>> {
        let consumer: rdkafka::consumer::BaseConsumer = self
            .client(&[])
            .create()
            .context("Failed to create a Kafka consumer")?;
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            use rdkafka::consumer::Consumer;
            let metadata = consumer
                .fetch_metadata(Some(&topic), timeout)
                .with_context(|| format!("the broker did not describe topic `{topic}`"))?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            partitions
                .into_iter()
                .map(|partition| {
                    let (low, high) = consumer
                        .fetch_watermarks(&topic, partition, timeout)
                        .with_context(|| format!("no watermarks for {topic}/{partition}"))?;
                    Ok(Watermarks {
                        partition,
                        low,
                        high,
                    })
                })
                .collect()
        })
        .await?
    }

    /// Creates the topic with `partitions` partitions unless it exists. A broker that
    /// does not answer is retried for about half a minute before giving up.
    pub async fn ensure_topic(&self, partitions: i32) -> anyhow::Result<()> {
        const ATTEMPTS: u32 = 6;
        let admin: AdminClient<DefaultClientContext> = self
            .client(&[])
            .create()
            .context("Failed to create the Kafka admin client")?;
        let topic = NewTopic::new(&self.topic, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(5)))
            .request_timeout(Some(Duration::from_secs(5)));
        let mut attempt = 1;
        loop {
            let outcome = match admin.create_topics([&topic], &options).await {
                Ok(results) => results.into_iter().try_for_each(|r| match r {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(()),
                    Err((_, code)) => Err(code.to_string()),
                }),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(brokers = %self.brokers, attempt, error = %e, "Kafka broker not ready; retrying.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    attempt += 1;
                }
                Err(e) => anyhow::bail!(
                    "cannot create topic {} on the Kafka broker at {} after {ATTEMPTS} attempts: {e} (start a broker with scripts/kafka.sh)",
                    self.topic,
                    self.brokers
                ),
            }
        }
    }
}
