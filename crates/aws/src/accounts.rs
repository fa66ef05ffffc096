//! Which clients reach an alarm's account: the deployment's own, or, for an account in
//! `ALLOWED_ACCOUNTS`, its member role assumed through STS with the external id. Assumed
//! clients are kept per (account, region) until their credentials near expiry, so a warm
//! function assumes once an hour, not once an alarm.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use elbmedic_engine::account::{member_role_arn, scope, session_name, AccountRefusal, Scope};

use crate::clients::{Clients, Regions};
use crate::settings::Organization;

/// Assumed credentials are renewed this long before they expire: a gather, remediation and
/// verification must not run out of them midway.
pub const RENEW_BEFORE_EXPIRY_SECONDS: i64 = 300;

/// Every account the deployment reaches, from one place.
#[derive(Debug, Default)]
pub struct Accounts {
    /// The deployment's own account, per region.
    pub regions: Regions,
    organization: Organization,
    assumed: tokio::sync::Mutex<HashMap<(String, String), Assumed>>,
}

#[derive(Debug)]
struct Assumed {
    clients: Clients,
    /// Epoch seconds; `None` when STS named no expiry (then they are assumed again each time).
    expires_at: Option<i64>,
}

impl Accounts {
    pub fn new(regions: Regions, organization: Organization) -> Self {
        Self {
            regions,
            organization,
            assumed: Default::default(),
        }
    }

    /// Who serves `named` (an alarm's or a plan's account) for a deployment of account `own`.
    pub fn scope(&self, named: Option<&str>, own: Option<&str>) -> Result<Scope, AccountRefusal> {
        scope(named, own, |account| self.organization.allows(account))
    }

    /// The clients for an alarm of `account` (`None`: the alarm names none) in `region`.
    /// `own` is the deployment's account when known. The own account, an unnamed one, or (with
    /// `own` unknown) one not in `ALLOWED_ACCOUNTS` get the own clients; an allowed member
    /// gets its role; any other account is refused. `now` is the caller's clock.
    pub async fn clients_for(
        &self,
        own: Option<&str>,
        account: Option<&str>,
        region: &str,
        alarm_name: &str,
        now: i64,
    ) -> Result<Clients, AccountRefusal> {
        let central = self.regions.get(region).await;
        // The own account unknown (`OwnIfSame`): the caller compares it beside the gather.
        let Scope::Member(account) = self.scope(account, own)? else {
            return Ok(central);
        };
        let account = account.as_str();
        let key = (account.to_string(), region.to_string());
        // Held across the assume: the records of one event (a composite's children) that need
        // the same account wait for one session instead of each assuming their own.
        let mut assumed = self.assumed.lock().await;
        if let Some(cached) = assumed.get(&key) {
            if cached
                .expires_at
                .is_some_and(|at| at - now > RENEW_BEFORE_EXPIRY_SECONDS)
            {
                return Ok(cached.clients.clone());
            }
        }
        let fresh = Box::pin(self.assume(&central, account, region, alarm_name)).await?;
        let clients = fresh.clients.clone();
        assumed.insert(key, fresh);
        Ok(clients)
    }

    /// Assumes the member role of `account` with STS in `region`.
    async fn assume(
        &self,
        central: &Clients,
        account: &str,
        region: &str,
        alarm_name: &str,
    ) -> Result<Assumed, AccountRefusal> {
        let role_name = self
            .organization
            .member_role_name
            .as_deref()
            .unwrap_or_default();
        let Some(role_arn) = member_role_arn(region, account, role_name) else {
            return Err(AccountRefusal::NotAllowed {
                account: account.to_string(),
                own: "this deployment".into(),
            });
        };
        let refused = |error: String| AccountRefusal::RoleNotAssumed {
            account: account.to_string(),
            role_arn: role_arn.clone(),
            error,
        };
        let answer = central
            .sts
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name(session_name(alarm_name))
            .set_external_id(self.organization.external_id.clone())
            .send()
            .await
            .map_err(|error| {
                let (_, text) = crate::errors::classify(&error);
                tracing::warn!(account, role = %role_arn, error = %text, "member role not assumed");
                refused(text)
            })?;
        let Some(credentials) = answer.credentials() else {
            return Err(refused("STS answered without credentials".into()));
        };
        let expires_at = Some(credentials.expiration().secs());
        let credentials = aws_sdk_sts::config::Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_string()),
            std::time::SystemTime::try_from(*credentials.expiration()).ok(),
            "elbmedic-member-role",
        );
        tracing::info!(account, role = %role_arn, expires_at, "member role assumed");
        Ok(Assumed {
            clients: central.for_member(account, credentials),
            expires_at,
        })
    }

    /// Starts a new invocation's call logs, the own account's and every member's.
    pub async fn clear_logs(&self) {
        self.regions.clear_logs().await;
        for assumed in self.assumed.lock().await.values() {
            assumed.clients.log.clear();
        }
    }

    /// Every IAM action called with the deployment's own role, since the clients were loaded.
    pub async fn actions(&self) -> BTreeSet<String> {
        self.regions.actions().await
    }

    /// Every IAM action called with each member account's role.
    pub async fn member_actions(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut actions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for ((account, _), assumed) in self.assumed.lock().await.iter() {
            actions
                .entry(account.clone())
                .or_default()
                .extend(assumed.clients.log.actions_ever());
        }
        actions
    }
}
