//! The remediation ledger in DynamoDB (`LEDGER_TABLE`): a per-LB lock with a lease, the
//! idle-timeout cooldown, and an audit record per applied action. One table, one string key
//! `pk`; items are told apart by the key's prefix.
//!
//! Not for: idempotency. Remediation is idempotent without the ledger (it re-reads state and
//! treats duplicates as success); the ledger only serialises runs and keeps history.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use elbmedic_engine::plan::PlanTarget;
use elbmedic_engine::snapshot::IdleTimeoutRaise;

/// A lock outlives any run (remediate's Lambda timeout is 60 s): a run that died leaves the
/// LB locked for at most this long.
pub const LOCK_LEASE_SECONDS: i64 = 120;

#[derive(Debug, Clone)]
pub struct Ledger {
    client: Client,
    table: String,
}

/// Who holds a lock, so that only the holder releases it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    key: String,
    owner: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LockOutcome {
    Acquired(Lock),
    /// Another run holds it until `until` (epoch seconds).
    Held {
        owner: String,
        until: i64,
    },
}

/// One applied action, for the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord<'a> {
    pub plan_id: &'a str,
    pub index: usize,
    pub action: &'a str,
    pub before: &'a str,
    pub after: &'a str,
    pub at: i64,
}

fn lb_key(target: &PlanTarget) -> String {
    format!("{}#{}", target.region, target.id)
}

fn cooldown_key(region: &str, lb_id: &str) -> String {
    format!("cooldown#idle#{region}#{lb_id}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn error_text<E: ProvideErrorMetadata>(error: &E) -> String {
    format!(
        "{}: {}",
        error.code().unwrap_or("error"),
        error.message().unwrap_or("no message")
    )
}

impl Ledger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table (on-demand billing); an existing table is fine.
    pub async fn create_table(&self) -> Result<&'static str, String> {
        let sent = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .send()
            .await;
        match sent {
            Ok(_) => Ok("created"),
            Err(e) if e.code() == Some("ResourceInUseException") => Ok("already exists"),
            Err(e) => Err(error_text(&e)),
        }
    }

    /// Takes the LB's lock unless a live lease is held by someone else.
    pub async fn lock(
        &self,
        target: &PlanTarget,
        owner: &str,
        now: i64,
    ) -> Result<LockOutcome, String> {
        let key = format!("lock#{}", lb_key(target));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&key))
            .item("owner", s(owner))
            .item("expires_at", n(now + LOCK_LEASE_SECONDS))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match put {
            Ok(_) => Ok(LockOutcome::Acquired(Lock {
                key,
                owner: owner.into(),
            })),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let item = self.get(&key).await?.unwrap_or_default();
                Ok(LockOutcome::Held {
                    owner: text_of(&item, "owner").unwrap_or_else(|| "another run".into()),
                    until: number_of(&item, "expires_at").unwrap_or(now),
                })
            }
            Err(e) => Err(error_text(&e)),
        }
    }

    /// Releases a lock this run holds; a lease that passed to someone else is left alone.
    pub async fn unlock(&self, lock: &Lock) -> Result<(), String> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&lock.key))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&lock.owner))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(error_text(&e)),
        }
    }

    /// The last idle-timeout raise elbmedic applied to the LB: the cooldown's clock, and the
    /// history that diagnose reports (a raise the controller put back).
    pub async fn last_idle_timeout_raise(
        &self,
        region: &str,
        lb_id: &str,
    ) -> Result<Option<IdleTimeoutRaise>, String> {
        let item = self.get(&cooldown_key(region, lb_id)).await?;
        Ok(item.and_then(|i| {
            Some(IdleTimeoutRaise {
                at: number_of(&i, "raised_at")?,
                from_seconds: number_of(&i, "from_seconds").and_then(|v| u32::try_from(v).ok()),
                to_seconds: number_of(&i, "to_seconds").and_then(|v| u32::try_from(v).ok()),
                plan_id: text_of(&i, "plan_id"),
            })
        }))
    }

    pub async fn record_idle_timeout_raise(
        &self,
        target: &PlanTarget,
        raise: &IdleTimeoutRaise,
    ) -> Result<(), String> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(cooldown_key(&target.region, &target.id)))
            .item("raised_at", n(raise.at));
        if let Some(from) = raise.from_seconds {
            put = put.item("from_seconds", n(i64::from(from)));
        }
        if let Some(to) = raise.to_seconds {
            put = put.item("to_seconds", n(i64::from(to)));
        }
        if let Some(plan) = &raise.plan_id {
            put = put.item("plan_id", s(plan));
        }
        put.send().await.map(|_| ()).map_err(|e| error_text(&e))
    }

    pub async fn audit(&self, target: &PlanTarget, record: &AuditRecord<'_>) -> Result<(), String> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                s(format!(
                    "audit#{}#{}#{}",
                    lb_key(target),
                    record.plan_id,
                    record.index
                )),
            )
            .item("load_balancer", s(&target.id))
            .item("plan_id", s(record.plan_id))
            .item("action", s(record.action))
            .item("before", s(record.before))
            .item("after", s(record.after))
            .item("at", n(record.at))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_text(&e))
    }

    async fn get(&self, key: &str) -> Result<Option<HashMap<String, AttributeValue>>, String> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| error_text(&e))
    }
}

fn text_of(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn number_of(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}
