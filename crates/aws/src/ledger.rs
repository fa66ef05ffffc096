//! The remediation ledger in DynamoDB (`LEDGER_TABLE`): a per-LB lock with a lease, the
//! idle-timeout cooldown, applied plans, and an audit record per applied action. One table,
//! one string key `pk`; items are told apart by the key's prefix. Its own module, beside
//! gathering and remediation, because both read it: observing never imports acting.
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
use elbmedic_engine::plan::outcome::FieldChange;
use elbmedic_engine::plan::{Place, PlanTarget};
use elbmedic_engine::snapshot::IdleTimeoutRaise;

/// A lock outlives any run (remediate's Lambda timeout is 120 s; tests/iam.rs checks the
/// template against this): a run that died leaves the LB locked for at most this long.
pub const LOCK_LEASE_SECONDS: i64 = 300;

#[derive(Debug, Clone)]
pub struct Ledger {
    client: Client,
    table: String,
    /// The deployment's own account's LBs also have items under keys without the account,
    /// written before keys named it: those are read when the new key has none.
    reads_legacy_keys: bool,
}

/// A record written with a version, so that concurrent writers agree (an incident, a storm).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub json: String,
    pub version: i64,
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
    /// The action itself (JSON), so an outcome can be rendered again from the ledger.
    pub action_json: &'a str,
    /// A change in the cluster: its field as it was and as elbmedic set it, for `undo`.
    pub field: Option<&'a FieldChange>,
}

pub use elbmedic_engine::plan::reconcile::{AuditedChange, PlanRecord};

fn plan_key<'a>(target: &'a PlanTarget, plan_id: &'a str) -> impl Fn(Option<&str>) -> String + 'a {
    move |account| {
        format!(
            "plan#{}#{plan_id}",
            lb_key(account, &target.region, &target.id)
        )
    }
}

/// A proposed plan awaiting approval, by its id.
fn proposal_key(plan_id: &str) -> String {
    format!("proposal#{plan_id}")
}

fn audit_key<'a>(
    target: &'a PlanTarget,
    plan_id: &'a str,
    index: usize,
) -> impl Fn(Option<&str>) -> String + 'a {
    move |account| {
        format!(
            "audit#{}#{plan_id}#{index}",
            lb_key(account, &target.region, &target.id)
        )
    }
}

/// An LB's part of a key: its account (so two accounts' LBs of the same id never share an
/// item), region and id. Keys written before the organization deployment have no account.
fn lb_key(account: Option<&str>, region: &str, id: &str) -> String {
    match account {
        Some(account) => format!("{account}#{region}#{id}"),
        None => format!("{region}#{id}"),
    }
}

fn cooldown_key<'a>(region: &'a str, lb_id: &'a str) -> impl Fn(Option<&str>) -> String + 'a {
    move |account| format!("cooldown#idle#{}", lb_key(account, region, lb_id))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub use elbmedic_engine::plan::reconcile::LedgerError;

fn error_text<E: ProvideErrorMetadata>(error: &E) -> LedgerError {
    LedgerError {
        code: error.code().unwrap_or("error").to_string(),
        message: error.message().unwrap_or("no message").to_string(),
    }
}

impl Ledger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            reads_legacy_keys: true,
        }
    }

    /// The ledger `table` for the load balancers `clients` reach: on the deployment's own
    /// DynamoDB, and without the old keys when they are a member account's.
    pub fn for_clients(clients: &crate::clients::Clients, table: impl Into<String>) -> Self {
        let ledger = Self::new(clients.dynamodb.clone(), table);
        match clients.member_account {
            Some(_) => ledger.for_member_account(),
            None => ledger,
        }
    }

    /// The ledger as seen for a member account's LBs, which have no items under old keys.
    pub fn for_member_account(mut self) -> Self {
        self.reads_legacy_keys = false;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table (on-demand billing); an existing table is fine.
    pub async fn create_table(&self) -> Result<&'static str, LedgerError> {
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
                    .map_err(|e| LedgerError {
                        code: "InvalidRequest".into(),
                        message: e.to_string(),
                    })?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| LedgerError {
                        code: "InvalidRequest".into(),
                        message: e.to_string(),
                    })?,
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
    ) -> Result<LockOutcome, LedgerError> {
        let key = format!(
            "lock#{}",
            lb_key(target.account.as_deref(), &target.region, &target.id)
        );
        self.lock_key(key, owner, now).await
    }

    /// Takes the lock of one object in a cluster: several load balancers may share it (an
    /// IngressClassParams serves every ALB of its class), so their runs take turns on it.
    pub async fn lock_object(
        &self,
        target: &PlanTarget,
        cluster: &str,
        place: &Place,
        owner: &str,
        now: i64,
    ) -> Result<LockOutcome, LedgerError> {
        let (api_version, kind, _) = place.api();
        let key = format!(
            "lock#k8s#{}#{}#{}#{api_version}#{kind}#{}#{}",
            target.account.as_deref().unwrap_or("own"),
            target.region,
            cluster,
            place.namespace().unwrap_or_default(),
            place.name()
        );
        self.lock_key(key, owner, now).await
    }

    async fn lock_key(
        &self,
        key: String,
        owner: &str,
        now: i64,
    ) -> Result<LockOutcome, LedgerError> {
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
    pub async fn unlock(&self, lock: &Lock) -> Result<(), LedgerError> {
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
        account: Option<&str>,
        region: &str,
        lb_id: &str,
    ) -> Result<Option<IdleTimeoutRaise>, LedgerError> {
        let item = self.get_lb(account, cooldown_key(region, lb_id)).await?;
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
    ) -> Result<(), LedgerError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                s(cooldown_key(&target.region, &target.id)(
                    target.account.as_deref(),
                )),
            )
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

    pub async fn audit(
        &self,
        target: &PlanTarget,
        record: &AuditRecord<'_>,
    ) -> Result<(), LedgerError> {
        let mut put = self.client.put_item();
        if let Some(field) = record.field {
            // JSON, so that an absent field (null) and any text are told apart.
            put = put.item("field", s(serde_json::to_string(field).unwrap_or_default()));
        }
        put.table_name(&self.table)
            .item(
                "pk",
                s(audit_key(target, record.plan_id, record.index)(
                    target.account.as_deref(),
                )),
            )
            .item("load_balancer", s(&target.id))
            .item("action_json", s(record.action_json))
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

    /// The ledger's record of `plan_id`: `None` when it was never applied here.
    pub async fn plan_record(
        &self,
        target: &PlanTarget,
        plan_id: &str,
    ) -> Result<Option<PlanRecord>, LedgerError> {
        let item = self
            .get_lb(target.account.as_deref(), plan_key(target, plan_id))
            .await?;
        Ok(item.map(|i| PlanRecord {
            at: number_of(&i, "applied_at").unwrap_or_default(),
            published: i.get("published").and_then(|v| v.as_bool().ok()).copied() == Some(true),
        }))
    }

    /// Records that `plan_id` was applied (`published` false until its outcome is out).
    pub async fn record_plan(
        &self,
        target: &PlanTarget,
        plan_id: &str,
        at: i64,
        published: bool,
    ) -> Result<(), LedgerError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                s(plan_key(target, plan_id)(target.account.as_deref())),
            )
            .item("applied_at", n(at))
            .item("published", AttributeValue::Bool(published))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_text(&e))
    }

    /// Notes that `plan_id` changed something in a cluster, and on which load balancer's
    /// behalf: `elbmedic undo PLAN_ID` finds the plan's audit trail from its id alone.
    pub async fn record_cluster_change(
        &self,
        plan_id: &str,
        target: &PlanTarget,
    ) -> Result<(), LedgerError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("undo#{plan_id}")))
            .item(
                "target",
                s(serde_json::to_string(target).unwrap_or_default()),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_text(&e))
    }

    /// The load balancer on whose behalf `plan_id` changed a cluster; `None` when it did not
    /// (or the record is not one elbmedic wrote).
    pub async fn cluster_change_target(
        &self,
        plan_id: &str,
    ) -> Result<Option<PlanTarget>, LedgerError> {
        let item = self.get(&format!("undo#{plan_id}")).await?;
        Ok(item
            .and_then(|i| text_of(&i, "target"))
            .and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// Keeps a proposed plan (the plan message, JSON) until it expires, so that an approval
    /// by its id finds it. Plan ids name their load balancer's region and id already.
    pub async fn store_proposal(
        &self,
        plan_id: &str,
        message_json: &str,
        expires_at: i64,
    ) -> Result<(), LedgerError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(proposal_key(plan_id)))
            .item("message", s(message_json))
            .item("expires_at", n(expires_at))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_text(&e))
    }

    /// The proposed plan message of `plan_id`, unless it expired by `now` or was never stored.
    pub async fn proposal(&self, plan_id: &str, now: i64) -> Result<Option<String>, LedgerError> {
        let Some(item) = self.get(&proposal_key(plan_id)).await? else {
            return Ok(None);
        };
        if number_of(&item, "expires_at").is_some_and(|at| at <= now) {
            return Ok(None);
        }
        Ok(text_of(&item, "message"))
    }

    /// The changes the audit trail holds for `plan_id`, in order; `indexes` bounds the search
    /// (a plan's steps).
    pub async fn audited_changes(
        &self,
        target: &PlanTarget,
        plan_id: &str,
        indexes: usize,
    ) -> Result<Vec<AuditedChange>, LedgerError> {
        let mut changes = Vec::new();
        for index in 0..indexes {
            let key = audit_key(target, plan_id, index);
            if let Some(item) = self.get_lb(target.account.as_deref(), key).await? {
                changes.push(AuditedChange {
                    action_json: text_of(&item, "action_json").unwrap_or_default(),
                    before: text_of(&item, "before").unwrap_or_default(),
                    after: text_of(&item, "after").unwrap_or_default(),
                    field: text_of(&item, "field")
                        .and_then(|json| serde_json::from_str(&json).ok()),
                });
            }
        }
        Ok(changes)
    }

    /// A versioned record (an incident, a storm): its JSON and version; `None` when absent.
    pub async fn versioned(&self, key: &str) -> Result<Option<Versioned>, LedgerError> {
        let Some(item) = self.get(key).await? else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            json: text_of(&item, "record").unwrap_or_default(),
            version: number_of(&item, "version").unwrap_or_default(),
        }))
    }

    /// Writes a versioned record if nobody wrote it since `read` (`None`: if it is absent):
    /// `Ok(false)` when someone did, and the caller reads and decides again. `expires_at` is
    /// the table's TTL attribute.
    pub async fn put_versioned(
        &self,
        key: &str,
        json: &str,
        read: Option<i64>,
        expires_at: i64,
    ) -> Result<bool, LedgerError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("record", s(json))
            .item("version", n(read.map_or(1, |v| v + 1)))
            .item("expires_at", n(expires_at));
        let put = match read {
            Some(version) => put
                .condition_expression("version = :read")
                .expression_attribute_values(":read", n(version)),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(error_text(&e)),
        }
    }

    /// Every versioned record whose key starts with `prefix` (the CLI's `incidents`): a scan,
    /// bounded to `max_pages` pages of DynamoDB's 1 MB.
    pub async fn scan_prefix(
        &self,
        prefix: &str,
        max_pages: usize,
    ) -> Result<Vec<String>, LedgerError> {
        let mut records = Vec::new();
        let mut start = None;
        for _ in 0..max_pages {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| error_text(&e))?;
            records.extend(
                page.items()
                    .iter()
                    .filter_map(|item| text_of(item, "record")),
            );
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(records)
    }

    /// An LB's item under its key in `account`; for the own account, under the old key
    /// without the account when the new one has none.
    async fn get_lb(
        &self,
        account: Option<&str>,
        key: impl Fn(Option<&str>) -> String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, LedgerError> {
        let item = self.get(&key(account)).await?;
        if item.is_some() || account.is_none() || !self.reads_legacy_keys {
            return Ok(item);
        }
        self.get(&key(None)).await
    }

    async fn get(&self, key: &str) -> Result<Option<HashMap<String, AttributeValue>>, LedgerError> {
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
