//! The admin API under `/admin/`: virtual keys created, listed, read,
//! updated and revoked at run time, and usage by key, model and time.
//!
//! Every route needs `Authorization: Bearer <admin_token>`, compared in
//! constant time (as SHA-256 digests); without an `admin_token` in the
//! config the whole API answers 403. A shard parses the call and hands it to
//! the control plane, which owns the store: it saves the key, answers, and
//! sends the new key table to every shard before the answer goes back, so
//! the key works on the asking shard at once and on the others within
//! microseconds.
//!
//! `POST /admin/reload` reloads the config file as SIGHUP does (202: the
//! log says how it went). `DELETE /admin/cache` empties the response cache
//! of every shard.
//!
//! A key's secret is shown once, in the answer that creates it; the store
//! keeps its SHA-256. Keys from the config's `[[keys]]` are listed (as
//! `"source":"config"`) but cannot be changed here.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::GatewayError;
use crate::http::server::Responder;
use crate::pipeline::Request;
use crate::shard::{Question, Shard, Snapshot};

/// An admin call, as the control plane carries it out.
#[derive(Debug, Clone)]
pub enum Op {
    CreateKey(KeySpec),
    ListKeys,
    GetKey(String),
    UpdateKey(String, KeySpec),
    RevokeKey(String),
    Usage { key: Option<String>, model: Option<String>, from_unix: Option<u64>, until_unix: Option<u64> },
}

/// The fields of a key a call sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub name: Option<String>,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub budget_usd: Option<f64>,
    /// `total`, `daily` or `monthly`.
    pub budget_period: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<u64>,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Answers one `/admin/...` request.
pub async fn handle(
    shard: &Shard,
    snapshot: &Snapshot,
    request: &Request<'_>,
    responder: &mut Responder<'_>,
) -> Result<(), GatewayError> {
    authorize(snapshot, request)?;
    if request.target() == "/admin/reload" {
        if request.head.method != crate::http::codec::Method::Post {
            return Err(GatewayError::MethodNotAllowed {
                method: "this method",
                path: "/admin/reload".into(),
                allow: "POST",
            });
        }
        // The process's own SIGHUP: the signal thread reloads, and logs how
        // it went (a config that fails validation changes nothing).
        let _ = if crate::sys::request_reload() {
            responder.json(202, b"{\"status\":\"reload requested; the log says how it went\"}").await
        } else {
            responder.json(500, &error_json("the reload could not be requested", "reload_failed")).await
        };
        return Ok(());
    }
    if request.target() == "/admin/cache" {
        if request.head.method != crate::http::codec::Method::Delete {
            return Err(GatewayError::MethodNotAllowed {
                method: "this method",
                path: "/admin/cache".into(),
                allow: "DELETE",
            });
        }
        // Every shard empties its cache as it next looks at it, and no
        // answer looked up before now is kept.
        crate::cache::clear_all();
        let _ = responder.json(200, b"{\"status\":\"cleared\"}").await;
        return Ok(());
    }
    let op = parse(request)?;
    let Some((status, body)) = shard.ask(Question::Admin(op)).await else {
        return Err(GatewayError::Internal("the control plane did not answer in time".into()));
    };
    let _ = responder.json(status, &body).await;
    Ok(())
}

fn authorize(snapshot: &Snapshot, request: &Request<'_>) -> Result<(), GatewayError> {
    let Some(token) = &snapshot.config.admin_token else {
        return Err(GatewayError::Forbidden("The admin API is disabled: set admin_token in the config.".into()));
    };
    let presented = request.authorization_bearer().unwrap_or_default();
    let expected = store::keys::digest(token.expose());
    if presented.is_empty() || !store::keys::digest_eq(&store::keys::digest(presented), &expected) {
        return Err(GatewayError::Unauthorized("The admin API needs `Authorization: Bearer <admin_token>`.".into()));
    }
    Ok(())
}

/// The call a method and path name.
fn parse(request: &Request<'_>) -> Result<Op, GatewayError> {
    use crate::http::codec::Method;
    let target = request.target();
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let rest = path.strip_prefix("/admin/").unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.head.method;
    let not_found = || GatewayError::RouteNotFound(path.to_owned());
    let not_allowed =
        |allow: &'static str| GatewayError::MethodNotAllowed { method: "this method", path: path.to_owned(), allow };
    match segments.as_slice() {
        ["keys"] => match method {
            Method::Get => Ok(Op::ListKeys),
            Method::Post => {
                let spec = spec(request.body)?;
                if spec.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                    return Err(GatewayError::BadRequest("a key needs a `name`".into()));
                }
                Ok(Op::CreateKey(spec))
            }
            _ => Err(not_allowed("GET, POST")),
        },
        ["keys", id] => match method {
            Method::Get => Ok(Op::GetKey((*id).to_owned())),
            Method::Post => Ok(Op::UpdateKey((*id).to_owned(), spec(request.body)?)),
            _ => Err(not_allowed("GET, POST")),
        },
        ["keys", id, "revoke"] => match method {
            Method::Post => Ok(Op::RevokeKey((*id).to_owned())),
            _ => Err(not_allowed("POST")),
        },
        ["usage"] => match method {
            Method::Get => Ok(Op::Usage {
                key: request.query_param("key").map(str::to_owned),
                model: request.query_param("model").map(str::to_owned),
                from_unix: request.query_unix("from")?,
                until_unix: request.query_unix("until")?,
            }),
            _ => Err(not_allowed("GET")),
        },
        _ => Err(not_found()),
    }
}

fn spec(body: &[u8]) -> Result<KeySpec, GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(KeySpec::default());
    }
    let spec: KeySpec = translate::wire::from_slice(body).map_err(|e| GatewayError::BadRequest(format!("{e}")))?;
    if let Some(period) = &spec.budget_period
        && store::BudgetPeriod::parse(period).is_none()
    {
        return Err(GatewayError::BadRequest("`budget_period` must be total, daily or monthly".into()));
    }
    if spec.budget_usd.is_some_and(|usd| !(usd.is_finite() && usd > 0.0)) {
        return Err(GatewayError::BadRequest("`budget_usd` must be a positive number".into()));
    }
    if spec.rpm == Some(0) || spec.tpm == Some(0) {
        return Err(GatewayError::BadRequest("`rpm` and `tpm` must be greater than 0".into()));
    }
    Ok(spec)
}

/// Applies a spec to a record.
pub fn apply(record: &mut store::KeyRecord, spec: KeySpec) {
    if let Some(name) = spec.name {
        record.name = name;
    }
    if let Some(models) = spec.models {
        record.models = store::ModelAllowlist::parse(&models);
    }
    if spec.rpm.is_some() {
        record.rpm = spec.rpm;
    }
    if spec.tpm.is_some() {
        record.tpm = spec.tpm;
    }
    if let Some(usd) = spec.budget_usd {
        let period = spec
            .budget_period
            .as_deref()
            .and_then(store::BudgetPeriod::parse)
            .or(record.budget.map(|b| b.period))
            .unwrap_or(store::BudgetPeriod::Total);
        record.budget = Some(store::Budget { usd_micros: (usd * 1_000_000.0).round() as u64, period });
    } else if let (Some(period), Some(budget)) =
        (spec.budget_period.as_deref().and_then(store::BudgetPeriod::parse), record.budget.as_mut())
    {
        budget.period = period;
    }
    if spec.expires_at.is_some() {
        record.expires_at = spec.expires_at;
    }
    if let Some(metadata) = spec.metadata {
        record.metadata = metadata;
    }
}

/// A record as the API shows it: never its secret or digest.
pub fn record_json(record: &store::KeyRecord, secret: Option<&str>, out: &mut String) {
    use std::fmt::Write;
    out.push_str("{\"id\":");
    push_string(out, record.id.as_str());
    if let Some(secret) = secret {
        out.push_str(",\"key\":");
        push_string(out, secret);
    }
    out.push_str(",\"name\":");
    push_string(out, &record.name);
    out.push_str(",\"source\":\"admin\",\"models\":[");
    for (i, m) in record.models.patterns().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(out, m);
    }
    out.push(']');
    let optional = |out: &mut String, name: &str, v: Option<u64>| {
        let _ = match v {
            Some(v) => write!(out, ",\"{name}\":{v}"),
            None => write!(out, ",\"{name}\":null"),
        };
    };
    optional(out, "rpm", record.rpm.map(u64::from));
    optional(out, "tpm", record.tpm);
    match record.budget {
        Some(b) => {
            let _ = write!(
                out,
                ",\"budget_usd\":{}.{:06},\"budget_period\":",
                b.usd_micros / 1_000_000,
                b.usd_micros % 1_000_000
            );
            push_string(out, b.period.as_str());
        }
        None => out.push_str(",\"budget_usd\":null,\"budget_period\":null"),
    }
    optional(out, "expires_at", record.expires_at);
    out.push_str(",\"metadata\":{");
    for (i, (k, v)) in record.metadata.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(out, k);
        out.push(':');
        push_string(out, v);
    }
    let _ = write!(out, "}},\"created_at\":{},\"revoked\":{}}}", record.created_at, record.revoked);
}

/// A config key as the API lists it.
pub fn config_key_json(key: &crate::config::Key, out: &mut String) {
    out.push_str("{\"id\":");
    push_string(out, key.ledger_id().as_str());
    out.push_str(",\"name\":");
    push_string(out, &key.name);
    out.push_str(",\"source\":\"config\"}");
}

pub fn push_string(out: &mut String, s: &str) {
    let mut bytes = Vec::with_capacity(s.len() + 2);
    translate::openai::write_json_string(&mut bytes, s);
    out.push_str(&String::from_utf8_lossy(&bytes));
}

pub fn error_json(message: &str, code: &str) -> Vec<u8> {
    crate::error::openai_error_body(message, "invalid_request_error", Some(code))
}
