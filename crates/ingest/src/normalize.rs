//! Turning one parsed record into a normalized [`Event`], detecting its shape from its field names.
//!
//! | shape | recognised by | time field |
//! |---|---|---|
//! | delivered (A) | `serviceName` + `actionName` | `timestamp` (epoch ms, number or string) |
//! | system table (B) | `service_name` + `action_name` | `event_time` (RFC 3339 or `yyyy-mm-dd hh:mm:ss`) |
//! | Azure (C) | `ServiceName`/`OperationName`, or `operationName` + `properties` | `TimeGenerated` / `time` |
//! | capture (D) | `seq` + `prev` + `hash` + `type` (nbtrail-gateway's log, see [`crate::capture`]) | `time` |
//!
//! Struct-valued columns may arrive as JSON text (CSV exports, Azure `RequestParams`/`Identity`/`Response`)
//! and are parsed. Every request parameter is kept as a string, as Databricks delivers them.

use chrono::{DateTime, NaiveDateTime, Utc};
use nbtrail_model::{Event, EventFields, Provenance, Shape, time_from_ms};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Looks a key up in an object.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A value as text: strings as they are, numbers and booleans printed, objects/arrays as compact JSON.
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => Some(v.to_string()),
    }
}

fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    get(obj, key).and_then(value_text).filter(|s| !s.is_empty())
}

/// A struct-valued field that may be an object (borrowed) or JSON text of an object (parsed).
fn object_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<Cow<'a, Map<String, Value>>>, String> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(Cow::Borrowed(m))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match crate::parse_json(s).map(|(v, _)| v) {
            Ok(Value::Object(m)) => Ok(Some(Cow::Owned(m))),
            Ok(Value::Null) => Ok(None),
            Ok(_) | Err(_) => Err(format!(
                "field `{key}` is neither an object nor JSON text of one"
            )),
        },
        Some(_) => Err(format!("field `{key}` is not an object")),
    }
}

/// An address as written, without a port suffix (`18.193.11.166:0`, `[2001:db8::1]:443`); the raw
/// record keeps what was written. A bare IPv6 address (colons, no brackets) is left alone.
pub fn ip_without_port(ip: &str) -> String {
    let ip = ip.trim();
    if let Some(rest) = ip.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        return host.to_string();
    }
    match ip.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host.to_string()
        }
        _ => ip.to_string(),
    }
}

pub(crate) fn parse_time_text(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // Spark writes `2024-05-01 10:01:01.123+00:00` or without zone (then UTC).
    // Parquet readers print timestamps as `2024-05-01 10:01:01.123 +00:00`.
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f %:z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = s.trim_end_matches('Z');
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(t.and_utc());
        }
    }
    if let Ok(ms) = s.parse::<i64>() {
        return time_from_ms(ms);
    }
    None
}

fn time_field(obj: &Map<String, Value>, key: &str) -> Result<DateTime<Utc>, String> {
    match get(obj, key) {
        None => Err(format!("missing `{key}`")),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(time_from_ms)
            .ok_or_else(|| format!("`{key}` is not a valid epoch-millisecond time: {n}")),
        Some(Value::String(s)) => {
            parse_time_text(s).ok_or_else(|| format!("`{key}` is not a recognised time: {s:?}"))
        }
        Some(other) => Err(format!("`{key}` is not a time: {other}")),
    }
}

/// Canonical request parameters: every value a string, nulls dropped, keys sorted.
fn params_of(v: Option<&Value>, key: &str) -> Result<BTreeMap<String, String>, String> {
    let parsed;
    let obj = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(s)) => match crate::parse_json(s).map(|(v, _)| v) {
            Ok(Value::Object(m)) => {
                parsed = m;
                &parsed
            }
            _ => return Err(format!("`{key}` is neither an object nor JSON text of one")),
        },
        Some(_) => return Err(format!("`{key}` is not an object")),
    };
    Ok(obj
        .iter()
        .filter_map(|(k, v)| value_text(v).map(|t| (k.clone(), t)))
        .collect())
}

/// The field names of one shape.
struct Names {
    shape: Shape,
    time: &'static str,
    service: &'static str,
    action: &'static str,
    user: &'static str,
    workspace: &'static str,
    source_ip: &'static str,
    user_agent: &'static str,
    request_id: &'static str,
    session: &'static str,
    params: &'static str,
    response: &'static str,
}

const DELIVERED: Names = Names {
    shape: Shape::Delivered,
    time: "timestamp",
    service: "serviceName",
    action: "actionName",
    user: "userIdentity",
    workspace: "workspaceId",
    source_ip: "sourceIPAddress",
    user_agent: "userAgent",
    request_id: "requestId",
    session: "sessionId",
    params: "requestParams",
    response: "response",
};

const SYSTEM_TABLE: Names = Names {
    shape: Shape::SystemTable,
    time: "event_time",
    service: "service_name",
    action: "action_name",
    user: "user_identity",
    workspace: "workspace_id",
    source_ip: "source_ip_address",
    user_agent: "user_agent",
    request_id: "request_id",
    session: "session_id",
    params: "request_params",
    response: "response",
};

const AZURE: Names = Names {
    shape: Shape::Azure,
    time: "TimeGenerated",
    service: "ServiceName",
    action: "ActionName",
    user: "Identity",
    workspace: "WorkspaceId",
    source_ip: "SourceIPAddress",
    user_agent: "UserAgent",
    request_id: "RequestId",
    session: "SessionId",
    params: "RequestParams",
    response: "Response",
};

/// Azure's storage / Event Hub form: lower-case envelope with the audit fields under `properties`.
const AZURE_STORAGE: Names = Names {
    shape: Shape::Azure,
    time: "time",
    service: "serviceName",
    action: "actionName",
    user: "identity",
    workspace: "workspaceId",
    source_ip: "sourceIPAddress",
    user_agent: "userAgent",
    request_id: "requestId",
    session: "sessionId",
    params: "requestParams",
    response: "response",
};

fn detect(obj: &Map<String, Value>) -> Option<&'static Names> {
    let has = |k: &str| obj.contains_key(k);
    if has("serviceName") || has("actionName") {
        Some(&DELIVERED)
    } else if has("service_name") || has("action_name") {
        Some(&SYSTEM_TABLE)
    } else if has("ServiceName")
        || has("ActionName")
        || has("OperationName") && has("TimeGenerated")
    {
        Some(&AZURE)
    } else if has("operationName") && matches!(obj.get("properties"), Some(Value::Object(_))) {
        Some(&AZURE_STORAGE)
    } else {
        None
    }
}

/// Language of a cell: a leading magic wins (a `%sql` cell in a Python notebook is SQL), then the
/// logged `commandLanguage`.
pub fn cell_language(command_text: Option<&str>, logged: Option<&str>) -> Option<String> {
    if let Some(text) = command_text {
        let first = text.trim_start().lines().next().unwrap_or("");
        if let Some(magic) = first.strip_prefix('%') {
            let name = magic
                .trim_start_matches('%')
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("");
            let lang = match name {
                "sql" => Some("sql"),
                "python" | "py" | "pip" | "run" => Some("python"),
                "scala" => Some("scala"),
                "r" => Some("r"),
                "md" => Some("markdown"),
                "sh" => Some("sh"),
                "fs" => Some("fs"),
                _ => None,
            };
            if let Some(l) = lang {
                return Some(l.to_string());
            }
        }
    }
    logged.map(str::to_ascii_lowercase)
}

/// Normalizes one JSON object into an [`Event`]. `raw` is the record verbatim.
pub fn normalize(
    obj: &Map<String, Value>,
    raw: String,
    provenance: Provenance,
) -> Result<Event, String> {
    if crate::capture::is_capture(obj) {
        return crate::capture::normalize(obj, raw, provenance);
    }
    let envelope = obj;
    if detect(obj).is_none()
        && let Some(shape) = crate::systables::detect(obj)
    {
        return crate::systables::normalize(obj, shape, raw, provenance);
    }
    let names = detect(obj).ok_or_else(|| {
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(6).collect();
        keys.sort_unstable();
        format!(
            "not a Databricks audit record: no serviceName/actionName (or service_name/action_name, \
             ServiceName/ActionName) field; keys seen: {}",
            if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
        )
    })?;
    // Azure storage form: audit fields live under `properties`, time and identity on the envelope.
    let empty = Map::new();
    let obj = if std::ptr::eq(names, &AZURE_STORAGE) {
        match envelope.get("properties") {
            Some(Value::Object(p)) => p,
            _ => &empty,
        }
    } else {
        obj
    };
    let time = time_field(envelope, names.time)?;
    let mut service = text(obj, names.service);
    let mut action = text(obj, names.action);
    if names.shape == Shape::Azure && (service.is_none() || action.is_none()) {
        // OperationName: `Microsoft.Databricks/workspaces/notebook/runCommand`.
        let op = text(envelope, "OperationName").or_else(|| text(envelope, "operationName"));
        if let Some(op) = op {
            let mut parts = op.rsplit('/');
            let a = parts.next().map(str::to_string);
            let s = parts.next().map(str::to_string);
            action = action.or(a);
            service = service.or(s);
        }
    }
    let service = service.ok_or_else(|| format!("missing `{}`", names.service))?;
    let action = action.ok_or_else(|| format!("missing `{}`", names.action))?;

    // Identity sits on the envelope (Azure storage form) or with the other fields; a malformed identity
    // is not fatal, the user is then unknown.
    let identity = object_field(envelope, names.user)
        .ok()
        .flatten()
        .or_else(|| object_field(obj, names.user).ok().flatten());
    let user = identity
        .as_ref()
        .and_then(|m| text(m, "email").or_else(|| text(m, "subjectName")))
        .or_else(|| match get(envelope, names.user) {
            // Some exports flatten the identity to the e-mail itself.
            Some(Value::String(s)) if !s.trim_start().starts_with('{') && !s.is_empty() => {
                Some(s.clone())
            }
            _ => None,
        });

    let params = params_of(get(obj, names.params), names.params)?;
    let response = object_field(obj, names.response)?;
    let (response_status, response_error) = match &response {
        Some(r) => {
            let status = get(r, "statusCode")
                .or_else(|| get(r, "status_code"))
                .and_then(|v| match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                });
            let err = text(r, "errorMessage").or_else(|| text(r, "error_message"));
            (status, err)
        }
        None => (None, None),
    };

    Ok(build(
        Common {
            time,
            user,
            // Some shapes carry the workspace only as the request's `orgId` (jobs events from Event Hubs).
            workspace_id: text(obj, names.workspace)
                .or_else(|| text(envelope, names.workspace))
                .or_else(|| params.get("orgId").filter(|v| !v.is_empty()).cloned()),
            service,
            action,
            source_ip: text(obj, names.source_ip)
                .or_else(|| text(envelope, "callerIpAddress"))
                .map(|ip| ip_without_port(&ip)),
            user_agent: text(obj, names.user_agent),
            request_id: text(obj, names.request_id),
            web_session_id: text(obj, names.session),
            response_status,
            response_error,
            shape: names.shape,
        },
        params,
        raw,
        provenance,
    ))
}

/// The fields every shape yields directly; [`build`] derives the rest from the request parameters.
pub(crate) struct Common {
    pub time: DateTime<Utc>,
    pub user: Option<String>,
    pub workspace_id: Option<String>,
    pub service: String,
    pub action: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub web_session_id: Option<String>,
    pub response_status: Option<i64>,
    pub response_error: Option<String>,
    pub shape: Shape,
}

/// Completes an event: notebook, cluster, command, language, status, duration and path come from the
/// request parameters, the same way for every shape and for both parse paths.
pub(crate) fn build(
    c: Common,
    params: BTreeMap<String, String>,
    raw: String,
    provenance: Provenance,
) -> Event {
    let p = |k: &str| params.get(k).filter(|s| !s.is_empty()).cloned();
    let command_text = p("commandText");
    let language = cell_language(command_text.as_deref(), p("commandLanguage").as_deref())
        .or_else(|| (c.service == "databrickssql" && command_text.is_some()).then(|| "sql".into()));
    let duration_ms = p("executionTime").and_then(|s| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e12)
            .map(|secs| (secs * 1000.0).round() as i64)
    });
    let notebook_path = p("newPath")
        .or_else(|| p("path"))
        .or_else(|| p("notebookFullPath"))
        .or_else(|| {
            let parent = p("parentPath")?;
            let name = p("newName").or_else(|| p("notebookName"))?;
            Some(format!("{}/{}", parent.trim_end_matches('/'), name))
        });
    Event {
        fields: EventFields {
            time: c.time,
            user: c.user,
            workspace_id: c.workspace_id,
            notebook_id: p("notebookId"),
            notebook_path,
            cluster_id: p("clusterId").or_else(|| p("warehouseId")),
            command_id: p("commandId"),
            language,
            command_text,
            status: p("status"),
            duration_ms,
            source_ip: c.source_ip,
            user_agent: c.user_agent,
            request_id: c.request_id,
            response_status: c.response_status,
            response_error: c.response_error,
            service: c.service,
            action: c.action,
        },
        web_session_id: c.web_session_id,
        params,
        shape: c.shape,
        raw,
        provenance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prov() -> Provenance {
        Provenance {
            file: "f.json".into(),
            line: 1,
            byte_offset: 0,
            file_sha256: None,
        }
    }

    fn norm(json: &str) -> Result<Event, String> {
        let v: Value = serde_json::from_str(json).unwrap();
        normalize(v.as_object().unwrap(), json.to_string(), prov())
    }

    const A: &str = r#"{"version":"2.0","auditLevel":"WORKSPACE_LEVEL","timestamp":1714557661000,"date":"2024-05-01","workspaceId":1234567890123456,"sourceIPAddress":"10.0.0.12","userAgent":"Mozilla/5.0","sessionId":"s-1","userIdentity":{"email":"alice@example.com","subjectName":null},"serviceName":"notebook","actionName":"runCommand","requestId":"ServiceMain-abc124","requestParams":{"notebookId":"3141592653589793","clusterId":"0501-123456-abcd1234","commandId":"5001","commandLanguage":"python","commandText":"tok = dbutils.secrets.get(scope='prod', key='api-token')","executionTime":"0.412","status":"finished"},"response":{"statusCode":200,"errorMessage":null,"result":null}}"#;

    #[test]
    fn delivered_shape() {
        let e = norm(A).unwrap();
        assert_eq!(e.shape, Shape::Delivered);
        assert_eq!(
            nbtrail_model::format_time(e.time),
            "2024-05-01T10:01:01.000Z"
        );
        assert_eq!(e.user.as_deref(), Some("alice@example.com"));
        assert_eq!(e.workspace_id.as_deref(), Some("1234567890123456"));
        assert_eq!(e.kind(), "notebook.runCommand");
        assert_eq!(e.notebook_id.as_deref(), Some("3141592653589793"));
        assert_eq!(e.cluster_id.as_deref(), Some("0501-123456-abcd1234"));
        assert_eq!(e.command_id.as_deref(), Some("5001"));
        assert_eq!(e.language.as_deref(), Some("python"));
        assert_eq!(e.duration_ms, Some(412));
        assert_eq!(e.status.as_deref(), Some("finished"));
        assert_eq!(e.response_status, Some(200));
        assert_eq!(e.source_ip.as_deref(), Some("10.0.0.12"));
        assert_eq!(e.request_id.as_deref(), Some("ServiceMain-abc124"));
        assert_eq!(e.web_session_id.as_deref(), Some("s-1"));
        assert_eq!(e.raw, A);
    }

    #[test]
    fn system_table_shape_with_snake_response() {
        let e = norm(r#"{"account_id":"acc","workspace_id":"42","version":"2.0","event_time":"2023-01-01T01:01:01.123+00:00","event_date":"2023-01-01","source_ip_address":"1.2.3.4","user_agent":"ua","session_id":null,"user_identity":{"email":"bob@example.com","subjectName":null},"service_name":"secrets","action_name":"getSecret","request_id":"r1","request_params":{"scope":"prod","key":"k"},"response":{"status_code":403,"error_message":"denied","result":null},"audit_level":"WORKSPACE_LEVEL","event_id":"e1"}"#).unwrap();
        assert_eq!(e.shape, Shape::SystemTable);
        assert_eq!(
            nbtrail_model::format_time(e.time),
            "2023-01-01T01:01:01.123Z"
        );
        assert_eq!(e.user.as_deref(), Some("bob@example.com"));
        assert_eq!(e.response_status, Some(403));
        assert_eq!(e.response_error.as_deref(), Some("denied"));
        assert_eq!(e.params.get("scope").map(String::as_str), Some("prod"));
    }

    #[test]
    fn azure_shape_with_string_params_and_identity() {
        let e = norm(r#"{"TimeGenerated":"2024-05-01T10:01:01.5Z","ServiceName":"notebook","ActionName":"attachNotebook","OperationName":"Microsoft.Databricks/workspaces/notebook/attachNotebook","Category":"notebook","Identity":"{\"email\":\"carol@example.com\",\"subjectName\":null}","SourceIPAddress":"5.6.7.8","RequestId":"rq","RequestParams":"{\"notebookId\":\"77\",\"path\":\"/Users/carol/x\",\"clusterId\":\"c1\"}","Response":"{\"statusCode\":200}","Type":"DatabricksNotebook"}"#).unwrap();
        assert_eq!(e.shape, Shape::Azure);
        assert_eq!(e.user.as_deref(), Some("carol@example.com"));
        assert_eq!(e.notebook_path.as_deref(), Some("/Users/carol/x"));
        assert_eq!(e.response_status, Some(200));
        assert_eq!(e.time.timestamp_millis(), 1714557661500);
    }

    #[test]
    fn azure_action_from_operation_name_and_storage_form() {
        let e = norm(r#"{"TimeGenerated":"2024-05-01T10:01:01Z","OperationName":"Microsoft.Databricks/workspaces/secrets/getSecret","RequestParams":{"scope":"s","key":"k","n":3}}"#).unwrap();
        assert_eq!(e.kind(), "secrets.getSecret");
        assert_eq!(e.params.get("n").map(String::as_str), Some("3"));
        let e = norm(r#"{"time":"2024-05-01T10:01:01Z","operationName":"Microsoft.Databricks/workspaces/notebook/runCommand","category":"notebook","identity":"{\"email\":\"d@example.com\"}","properties":{"serviceName":"notebook","actionName":"runCommand","requestId":"r","requestParams":"{\"commandText\":\"%sql select 1\",\"notebookId\":\"1\"}","sourceIPAddress":"9.9.9.9"}}"#).unwrap();
        assert_eq!(e.shape, Shape::Azure);
        assert_eq!(e.user.as_deref(), Some("d@example.com"));
        assert_eq!(e.language.as_deref(), Some("sql"));
        assert_eq!(e.source_ip.as_deref(), Some("9.9.9.9"));
        for (written, ip) in [
            ("18.193.11.166:0", "18.193.11.166"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("10.0.0.1", "10.0.0.1"),
        ] {
            assert_eq!(ip_without_port(written), ip);
        }
    }

    #[test]
    fn same_event_in_two_shapes_has_same_natural_key() {
        let a = norm(A).unwrap();
        let b = norm(r#"{"event_time":"2024-05-01T10:01:01.000Z","service_name":"notebook","action_name":"runCommand","request_id":"ServiceMain-abc124","request_params":{"notebookId":"3141592653589793","clusterId":"0501-123456-abcd1234","commandId":"5001","commandLanguage":"python","commandText":"tok = dbutils.secrets.get(scope='prod', key='api-token')","executionTime":"0.412","status":"finished"}}"#).unwrap();
        assert_eq!(a.natural_key(), b.natural_key());
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(
            norm(r#"{"a":1}"#)
                .unwrap_err()
                .contains("not a Databricks audit record")
        );
        assert!(
            norm(r#"{"serviceName":"x","actionName":"y"}"#)
                .unwrap_err()
                .contains("missing `timestamp`")
        );
        assert!(
            norm(r#"{"serviceName":"x","actionName":"y","timestamp":"soon"}"#)
                .unwrap_err()
                .contains("not a recognised time")
        );
        assert!(
            norm(r#"{"serviceName":"x","actionName":"y","timestamp":1,"requestParams":"[1]"}"#)
                .unwrap_err()
                .contains("requestParams")
        );
    }

    #[test]
    fn languages_from_magics() {
        assert_eq!(
            cell_language(Some("%sql\nselect 1"), Some("python")).as_deref(),
            Some("sql")
        );
        assert_eq!(
            cell_language(Some("%%sql select 1"), None).as_deref(),
            Some("sql")
        );
        assert_eq!(
            cell_language(Some("%md # hi"), Some("python")).as_deref(),
            Some("markdown")
        );
        assert_eq!(
            cell_language(Some("x = 1"), Some("PYTHON")).as_deref(),
            Some("python")
        );
        assert_eq!(
            cell_language(Some("%run ./other"), None).as_deref(),
            Some("python")
        );
        assert_eq!(cell_language(None, None), None);
    }

    /// Issue 18: the time and number spellings real exports use all read as the same instant and value.
    #[test]
    fn time_and_number_spellings_of_real_exports() {
        let base = |time: &str, status: &str| {
            format!(
                r#"{{"account_id":"acc","workspace_id":"42","event_time":{time},"source_ip_address":"1.2.3.4:52311","user_identity":{{"email":"bob@example.com"}},"service_name":"secrets","action_name":"getSecret","request_id":"r1","request_params":{{"scope":"prod"}},"response":{{"status_code":{status}}}}}"#
            )
        };
        let want = DateTime::parse_from_rfc3339("2024-05-01T10:01:01.123Z")
            .unwrap()
            .with_timezone(&Utc);
        for (time, ms) in [
            (r#""2024-05-01T10:01:01.123Z""#, true),
            (r#""2024-05-01T10:01:01.1230000Z""#, true),
            (r#""2024-05-01T10:01:01.123+00:00""#, true),
            (r#""2024-05-01T12:01:01.123+02:00""#, true),
            (r#""2024-05-01 10:01:01.123 +00:00""#, true),
            (r#""2024-05-01 10:01:01.123""#, true),
            ("1714557661123", true),
            (r#""1714557661123""#, true),
            (r#""2024-05-01T10:01:01Z""#, false),
        ] {
            for status in ["200", r#""200""#] {
                let e = norm(&base(time, status)).unwrap_or_else(|m| panic!("{time}: {m}"));
                if ms {
                    assert_eq!(e.time, want, "{time}");
                } else {
                    assert_eq!(e.time.timestamp(), want.timestamp(), "{time}");
                }
                assert_eq!(e.response_status, Some(200), "{status}");
                assert_eq!(e.source_ip.as_deref(), Some("1.2.3.4"));
            }
        }
    }
}
