//! A fast path for the most common record: shape A (audit log delivery JSON) with the documented field
//! types. It deserializes into borrowed strings instead of building a `serde_json::Value` tree, about twice
//! as fast. It accepts only clean records — every field of the expected type, no nested parameter values,
//! a numeric or parseable timestamp — and returns `None` for anything else, which then takes the general
//! path in [`crate::normalize`]. Both end in the same [`build`](crate::normalize::build), and tests check
//! that the two paths give identical events.

use crate::normalize::{Common, build};
use nbtrail_model::{Event, Provenance, Shape, time_from_ms};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A JSON scalar, borrowed where possible.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar<'a> {
    #[serde(borrow)]
    Str(Cow<'a, str>),
    Num(serde_json::Number),
    Bool(bool),
}

impl Scalar<'_> {
    fn text(self) -> String {
        match self {
            Scalar::Str(s) => s.into_owned(),
            Scalar::Num(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Identity<'a> {
    #[serde(borrow, default)]
    email: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "subjectName")]
    subject_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Response<'a> {
    #[serde(default, rename = "statusCode")]
    status_code: Option<i64>,
    #[serde(borrow, default, rename = "errorMessage")]
    error_message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delivered<'a> {
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default, rename = "workspaceId")]
    workspace_id: Option<Scalar<'a>>,
    #[serde(borrow, default, rename = "sourceIPAddress")]
    source_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "userAgent")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "sessionId")]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "userIdentity")]
    user_identity: Option<Identity<'a>>,
    #[serde(borrow, default, rename = "serviceName")]
    service: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "actionName")]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "requestId")]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "requestParams")]
    request_params: Option<BTreeMap<Cow<'a, str>, Option<Scalar<'a>>>>,
    #[serde(borrow, default)]
    response: Option<Response<'a>>,
}

fn nonempty(s: Option<Cow<'_, str>>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(Cow::into_owned)
}

/// Normalizes `raw` if it is a clean shape A record; `None` sends it down the general path.
pub fn delivered(raw: &str, provenance: &Provenance) -> Option<Event> {
    // Cheap pre-check: the other shapes never carry this key.
    if !raw.contains("\"serviceName\"") || raw.contains("\"properties\"") {
        return None;
    }
    let d: Delivered<'_> = serde_json::from_str(raw).ok()?;
    let time = time_from_ms(d.timestamp?)?;
    let service = nonempty(d.service)?;
    let action = nonempty(d.action)?;
    let user = d
        .user_identity
        .and_then(|i| nonempty(i.email).or_else(|| nonempty(i.subject_name)));
    let params: BTreeMap<String, String> = d
        .request_params
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.into_owned(), v.text())))
        .collect();
    let (response_status, response_error) = match d.response {
        Some(r) => (r.status_code, nonempty(r.error_message)),
        None => (None, None),
    };
    Some(build(
        Common {
            time,
            user,
            workspace_id: d.workspace_id.map(Scalar::text).filter(|s| !s.is_empty()),
            service,
            action,
            source_ip: nonempty(d.source_ip),
            user_agent: nonempty(d.user_agent),
            request_id: nonempty(d.request_id),
            web_session_id: nonempty(d.session_id),
            response_status,
            response_error,
            shape: Shape::Delivered,
        },
        params,
        raw.to_string(),
        provenance.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn prov() -> Provenance {
        Provenance {
            file: "f".into(),
            line: 3,
            byte_offset: 9,
            file_sha256: None,
        }
    }

    fn slow(raw: &str) -> Result<Event, String> {
        let v: Value = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        crate::normalize::normalize(
            v.as_object().ok_or("not an object")?,
            raw.to_string(),
            prov(),
        )
    }

    /// Whenever the fast path answers, it answers exactly what the general path does.
    fn agree(raw: &str) -> Result<bool, TestCaseError> {
        match delivered(raw, &prov()) {
            Some(fast) => {
                prop_assert_eq!(Ok(fast), slow(raw), "{}", raw);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            "[a-zA-Z0-9 _./%=\"\\\\é\n-]{0,12}".prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            Just(Value::from(13.789)),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    proptest! {
        #[test]
        fn fast_and_general_paths_agree(
            ts in prop_oneof![any::<i64>().prop_map(Value::from), Just(json!("1714557661000")), Just(json!(null)), Just(json!(1.5))],
            ws in scalar(),
            email in prop_oneof![Just(json!("a@x.com")), Just(json!("")), Just(json!(null))],
            subject in prop_oneof![Just(json!("svc")), Just(json!(null))],
            service in prop_oneof![Just(json!("notebook")), Just(json!("")), Just(json!(null)), Just(json!(3))],
            params in proptest::collection::btree_map(
                prop_oneof![Just("commandText".to_string()), Just("executionTime".to_string()), Just("path".to_string()), Just("notebookId".to_string()), "[a-z]{1,6}"],
                prop_oneof![scalar(), Just(json!({"nested": 1}))], 0..6),
            status in prop_oneof![Just(json!(200)), Just(json!("500")), Just(json!(null))],
            err in scalar(),
        ) {
            let rec = json!({
                "version": "2.0", "timestamp": ts, "workspaceId": ws,
                "userIdentity": {"email": email, "subjectName": subject},
                "serviceName": service, "actionName": "runCommand", "requestId": "r-1",
                "sourceIPAddress": "10.0.0.1", "userAgent": "ua", "sessionId": null,
                "requestParams": params, "response": {"statusCode": status, "errorMessage": err},
            });
            agree(&rec.to_string())?;
        }
    }

    #[test]
    fn the_fast_path_takes_clean_records_and_leaves_the_rest() {
        let clean = r#"{"timestamp":1714557661000,"workspaceId":1,"userIdentity":{"email":"a@x.com"},"serviceName":"notebook","actionName":"runCommand","requestId":"r","requestParams":{"commandText":"%sql select 1","executionTime":"0.5","n":3},"response":{"statusCode":200,"errorMessage":null}}"#;
        assert!(agree(clean).unwrap());
        // String params, a string timestamp, an Azure storage envelope: general path.
        for other in [
            r#"{"timestamp":1,"serviceName":"a","actionName":"b","requestParams":"{\"x\":\"1\"}"}"#,
            r#"{"timestamp":"1714557661000","serviceName":"a","actionName":"b"}"#,
            r#"{"time":"2024-01-01T00:00:00Z","operationName":"x/a/b","properties":{"serviceName":"a","actionName":"b"}}"#,
        ] {
            assert!(delivered(other, &prov()).is_none(), "{other}");
        }
    }
}
