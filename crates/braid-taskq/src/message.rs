//! Celery's task message, protocol version 2, as kombu puts it on a Redis list.
//!
//! An envelope is a JSON object: `body` (base64 of the serialized `[args, kwargs, embed]`),
//! `content-type`, `content-encoding`, `headers` (the task's name, id, eta, retries, ...)
//! and `properties` (correlation id, reply-to, priority, delivery info and tag).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::{Error, Result, clock};

/// How a message body is serialized; Celery's `task_serializer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// `application/json`, Celery's default.
    #[default]
    Json,
    /// `application/x-msgpack`.
    Msgpack,
}

impl Serializer {
    /// The MIME type written in `content-type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Serializer::Json => "application/json",
            Serializer::Msgpack => "application/x-msgpack",
        }
    }

    fn content_encoding(self) -> &'static str {
        match self {
            Serializer::Json => "utf-8",
            Serializer::Msgpack => "binary",
        }
    }

    fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type {
            "application/json" => Some(Serializer::Json),
            "application/x-msgpack" | "application/msgpack" => Some(Serializer::Msgpack),
            _ => None,
        }
    }
}

impl std::str::FromStr for Serializer {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "json" => Ok(Serializer::Json),
            "msgpack" => Ok(Serializer::Msgpack),
            other => Err(Error::InvalidOption(format!(
                "unknown serializer `{other}` (expected json or msgpack)"
            ))),
        }
    }
}

/// The headers of a protocol-2 task message.
///
/// Missing or `null` optional headers read as their defaults; `task` and `id` are required.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headers {
    /// The language of the sender: `py` for Celery, `rs` for braid.
    #[serde(default)]
    pub lang: String,
    /// The task's registered name.
    pub task: String,
    /// The task id (a UUID), which is also the result's id.
    pub id: String,
    /// A name to show in logs instead of the task's name.
    #[serde(default)]
    pub shadow: Option<String>,
    /// Do not run before this time (ISO 8601).
    #[serde(default)]
    pub eta: Option<String>,
    /// Do not run after this time (ISO 8601); the task is then revoked.
    #[serde(default)]
    pub expires: Option<String>,
    /// The group this task belongs to.
    #[serde(default)]
    pub group: Option<String>,
    /// The task's place in its group.
    #[serde(default)]
    pub group_index: Option<u64>,
    /// How many times this task has been retried.
    #[serde(default)]
    pub retries: u32,
    /// Hard and soft time limits in seconds.
    #[serde(default)]
    pub timelimit: (Option<f64>, Option<f64>),
    /// The id of the first task of the workflow.
    #[serde(default)]
    pub root_id: Option<String>,
    /// The id of the task that sent this one.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// A printable form of the arguments.
    #[serde(default)]
    pub argsrepr: Option<String>,
    /// A printable form of the keyword arguments.
    #[serde(default)]
    pub kwargsrepr: Option<String>,
    /// The sender's node name.
    #[serde(default)]
    pub origin: Option<String>,
    /// Do not store the result.
    #[serde(default)]
    pub ignore_result: Option<bool>,
    /// How many times the task has been replaced.
    #[serde(default)]
    pub replaced_task_nesting: u32,
    /// The names of stamped headers.
    #[serde(default)]
    pub stamped_headers: Option<Vec<String>>,
    /// Stamps (Celery 5.3+).
    #[serde(default)]
    pub stamps: Map<String, Value>,
    /// Every other header: user headers, `redelivered`, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Headers {
    /// Headers for a new call of `task` with id `id`.
    pub fn new(task: &str, id: &str) -> Self {
        Headers {
            lang: "py".into(),
            task: task.into(),
            id: id.into(),
            shadow: None,
            eta: None,
            expires: None,
            group: None,
            group_index: None,
            retries: 0,
            timelimit: (None, None),
            root_id: Some(id.into()),
            parent_id: None,
            argsrepr: None,
            kwargsrepr: None,
            origin: None,
            ignore_result: Some(false),
            replaced_task_nesting: 0,
            stamped_headers: None,
            stamps: Map::new(),
            extra: Map::new(),
        }
    }

    /// The ETA, parsed.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the header is not an ISO 8601 time.
    pub fn eta(&self) -> Result<Option<DateTime<Utc>>> {
        parse_time("eta", self.eta.as_deref())
    }

    /// The expiry time, parsed.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the header is not an ISO 8601 time.
    pub fn expires(&self) -> Result<Option<DateTime<Utc>>> {
        parse_time("expires", self.expires.as_deref())
    }
}

fn parse_time(name: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    match text {
        None => Ok(None),
        Some(t) => clock::parse(t)
            .map(Some)
            .ok_or_else(|| Error::Protocol(format!("header `{name}` is not a time: {t:?}"))),
    }
}

/// Where a message was published: the exchange and routing key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryInfo {
    /// The exchange (`""`, the default exchange, routes by queue name).
    #[serde(default)]
    pub exchange: String,
    /// The routing key: the queue's name for the default exchange.
    #[serde(default)]
    pub routing_key: String,
}

/// The properties of a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Properties {
    /// The task id again, for RPC result backends.
    #[serde(default)]
    pub correlation_id: String,
    /// Where RPC replies go; empty for other backends.
    #[serde(default)]
    pub reply_to: String,
    /// 2: persistent.
    pub delivery_mode: u8,
    /// The exchange and routing key.
    #[serde(default)]
    pub delivery_info: DeliveryInfo,
    /// 0 to 9; on Redis, lower numbers are served first.
    #[serde(default)]
    pub priority: u8,
    /// How the body is encoded in the envelope: `base64`.
    pub body_encoding: String,
    /// The publisher's tag for this message.
    #[serde(default)]
    pub delivery_tag: String,
    /// Every other property (`expiration`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Reads the headers without buffering them (serde's `flatten` would): known ones into
/// their fields, the rest into `extra`.
impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Headers;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("task message headers")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Headers, A::Error> {
                let mut h = Headers::new("", "");
                h.root_id = None;
                h.ignore_result = None;
                h.lang = String::new();
                let (mut task, mut id) = (None, None);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        "lang" => h.lang = map.next_value::<Option<String>>()?.unwrap_or_default(),
                        "task" => task = map.next_value::<Option<String>>()?,
                        "id" => id = map.next_value::<Option<String>>()?,
                        "shadow" => h.shadow = map.next_value()?,
                        "eta" => h.eta = map.next_value()?,
                        "expires" => h.expires = map.next_value()?,
                        "group" => h.group = map.next_value()?,
                        "group_index" => h.group_index = map.next_value()?,
                        "retries" => h.retries = map.next_value::<Option<u32>>()?.unwrap_or(0),
                        "timelimit" => {
                            h.timelimit = map
                                .next_value::<Option<(Option<f64>, Option<f64>)>>()?
                                .unwrap_or_default()
                        }
                        "root_id" => h.root_id = map.next_value()?,
                        "parent_id" => h.parent_id = map.next_value()?,
                        "argsrepr" => h.argsrepr = map.next_value()?,
                        "kwargsrepr" => h.kwargsrepr = map.next_value()?,
                        "origin" => h.origin = map.next_value()?,
                        "ignore_result" => h.ignore_result = map.next_value()?,
                        "replaced_task_nesting" => {
                            h.replaced_task_nesting = map.next_value::<Option<u32>>()?.unwrap_or(0)
                        }
                        "stamped_headers" => h.stamped_headers = map.next_value()?,
                        "stamps" => {
                            h.stamps = map
                                .next_value::<Option<Map<String, Value>>>()?
                                .unwrap_or_default()
                        }
                        _ => {
                            let value: Value = map.next_value()?;
                            h.extra.insert(key.into_owned(), value);
                        }
                    }
                }
                h.task = task.ok_or_else(|| serde::de::Error::missing_field("task"))?;
                h.id = id.ok_or_else(|| serde::de::Error::missing_field("id"))?;
                Ok(h)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Reads the properties without buffering them; unknown ones go into `extra`.
impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Properties;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("message properties")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Properties, A::Error> {
                let mut p = Properties {
                    correlation_id: String::new(),
                    reply_to: String::new(),
                    delivery_mode: 2,
                    delivery_info: DeliveryInfo::default(),
                    priority: 0,
                    body_encoding: "base64".into(),
                    delivery_tag: String::new(),
                    extra: Map::new(),
                };
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        "correlation_id" => {
                            p.correlation_id =
                                map.next_value::<Option<String>>()?.unwrap_or_default()
                        }
                        "reply_to" => {
                            p.reply_to = map.next_value::<Option<String>>()?.unwrap_or_default()
                        }
                        "delivery_mode" => {
                            p.delivery_mode = map.next_value::<Option<u8>>()?.unwrap_or(2)
                        }
                        "delivery_info" => {
                            p.delivery_info = map
                                .next_value::<Option<DeliveryInfo>>()?
                                .unwrap_or_default()
                        }
                        "priority" => p.priority = map.next_value::<Option<u8>>()?.unwrap_or(0),
                        "body_encoding" => {
                            p.body_encoding = map
                                .next_value::<Option<String>>()?
                                .unwrap_or_else(|| "base64".into())
                        }
                        "delivery_tag" => {
                            p.delivery_tag = map.next_value::<Option<String>>()?.unwrap_or_default()
                        }
                        _ => {
                            let value: Value = map.next_value()?;
                            p.extra.insert(key.into_owned(), value);
                        }
                    }
                }
                Ok(p)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// What a task does next: links on success and failure, the rest of a chain, a chord's body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Embed {
    /// Signatures applied with the result on success (`link`).
    #[serde(default)]
    pub callbacks: Option<Vec<Value>>,
    /// Signatures applied with the task id on failure (`link_error`).
    #[serde(default)]
    pub errbacks: Option<Vec<Value>>,
    /// The rest of a chain, last to run first.
    #[serde(default)]
    pub chain: Option<Vec<Value>>,
    /// The body of the chord this task is a header task of.
    #[serde(default)]
    pub chord: Option<Value>,
}

impl Embed {
    fn is_empty(&self) -> bool {
        self.callbacks.as_ref().is_none_or(Vec::is_empty)
            && self.errbacks.as_ref().is_none_or(Vec::is_empty)
            && self.chain.as_ref().is_none_or(Vec::is_empty)
            && self.chord.as_ref().is_none_or(Value::is_null)
    }
}

/// A task message of Celery's protocol version 2.
#[derive(Debug, Clone)]
pub struct TaskMessage {
    /// The headers.
    pub headers: Headers,
    /// The properties.
    pub properties: Properties,
    /// The positional arguments as a JSON array.
    pub args: Box<RawValue>,
    /// The keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Links, chain and chord.
    pub embed: Embed,
    /// How the body is (to be) serialized.
    pub serializer: Serializer,
}

impl PartialEq for TaskMessage {
    fn eq(&self, other: &Self) -> bool {
        self.headers == other.headers
            && self.properties == other.properties
            && self.args.get() == other.args.get()
            && self.kwargs == other.kwargs
            && self.embed == other.embed
            && self.serializer == other.serializer
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    body: Cow<'a, str>,
    #[serde(rename = "content-encoding", default)]
    content_encoding: Cow<'a, str>,
    #[serde(rename = "content-type", default)]
    content_type: Cow<'a, str>,
    headers: Headers,
    properties: Properties,
}

/// What can be read of a message that does not decode, for logs and for storing a failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Salvage {
    /// The task id, when the headers have one.
    pub id: Option<String>,
    /// The task name, when the headers have one.
    pub task: Option<String>,
}

impl Salvage {
    /// Reads what it can from a malformed envelope.
    pub fn from_payload(payload: &[u8]) -> Self {
        let Ok(Value::Object(envelope)) = serde_json::from_slice::<Value>(payload) else {
            return Salvage::default();
        };
        let headers = envelope.get("headers").and_then(Value::as_object);
        let field = |name: &str| {
            headers
                .and_then(|h| h.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Salvage {
            id: field("id"),
            task: field("task"),
        }
    }
}

impl TaskMessage {
    /// A message calling `task` with the JSON array `args`, id `id`, for `queue`.
    ///
    /// # Errors
    /// [`Error::Protocol`] when `args` is not a JSON array.
    pub fn new(task: &str, id: &str, args: Box<RawValue>, queue: &str) -> Result<Self> {
        if !args.get().trim_start().starts_with('[') {
            return Err(Error::Protocol(format!(
                "task arguments must be a JSON array, not {}",
                args.get()
            )));
        }
        Ok(TaskMessage {
            headers: Headers::new(task, id),
            properties: Properties {
                correlation_id: id.into(),
                reply_to: String::new(),
                delivery_mode: 2,
                delivery_info: DeliveryInfo {
                    exchange: String::new(),
                    routing_key: queue.into(),
                },
                priority: 0,
                body_encoding: "base64".into(),
                delivery_tag: uuid::Uuid::new_v4().to_string(),
                extra: Map::new(),
            },
            args,
            kwargs: Map::new(),
            embed: Embed::default(),
            serializer: Serializer::Json,
        })
    }

    /// The task id.
    pub fn id(&self) -> &str {
        &self.headers.id
    }

    /// The task name.
    pub fn task(&self) -> &str {
        &self.headers.task
    }

    /// The positional arguments, parsed.
    ///
    /// # Errors
    /// [`Error::Protocol`] when they are not a JSON array.
    pub fn args_values(&self) -> Result<Vec<Value>> {
        serde_json::from_str(self.args.get())
            .map_err(|e| Error::Protocol(format!("task arguments are not a list: {e}")))
    }

    /// Serializes the message into the envelope kombu puts on a Redis list.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the body cannot be serialized.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let body = self.encode_body()?;
        let envelope = Envelope {
            body: Cow::Owned(BASE64.encode(body)),
            content_encoding: Cow::Borrowed(self.serializer.content_encoding()),
            content_type: Cow::Borrowed(self.serializer.content_type()),
            headers: self.headers.clone(),
            properties: self.properties.clone(),
        };
        serde_json::to_vec(&envelope).map_err(|e| Error::Protocol(e.to_string()))
    }

    fn encode_body(&self) -> Result<Vec<u8>> {
        match self.serializer {
            Serializer::Json => {
                let kwargs = serde_json::to_string(&self.kwargs)
                    .map_err(|e| Error::Protocol(e.to_string()))?;
                let embed = serde_json::to_string(&self.embed)
                    .map_err(|e| Error::Protocol(e.to_string()))?;
                let args = self.args.get();
                let mut body = String::with_capacity(args.len() + kwargs.len() + embed.len() + 4);
                body.push('[');
                body.push_str(args);
                body.push_str(", ");
                body.push_str(&kwargs);
                body.push_str(", ");
                body.push_str(&embed);
                body.push(']');
                Ok(body.into_bytes())
            }
            Serializer::Msgpack => {
                let args = self.args_values()?;
                rmp_serde::to_vec_named(&(args, &self.kwargs, &self.embed))
                    .map_err(|e| Error::Protocol(e.to_string()))
            }
        }
    }

    /// Parses an envelope.
    ///
    /// # Errors
    /// [`Error::Protocol`] naming what is wrong: not JSON, missing headers, an unknown
    /// content type or encoding, a body that is not `[args, kwargs, embed]`.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let envelope: Envelope<'_> = serde_json::from_slice(payload)
            .map_err(|e| Error::Protocol(format!("not a task envelope: {e}")))?;
        let serializer =
            Serializer::from_content_type(&envelope.content_type).ok_or_else(|| {
                Error::Protocol(format!(
                    "unsupported content type {:?}",
                    envelope.content_type
                ))
            })?;
        let body = match envelope.properties.body_encoding.as_str() {
            "base64" => BASE64
                .decode(envelope.body.as_bytes())
                .map_err(|e| Error::Protocol(format!("body is not base64: {e}")))?,
            "" | "utf-8" => envelope.body.as_bytes().to_vec(),
            other => {
                return Err(Error::Protocol(format!(
                    "unsupported body encoding {other:?}"
                )));
            }
        };
        let (args, kwargs, embed) = match serializer {
            Serializer::Json => decode_json_body(&body)?,
            Serializer::Msgpack => decode_msgpack_body(&body)?,
        };
        Ok(TaskMessage {
            headers: envelope.headers,
            properties: envelope.properties,
            args,
            kwargs,
            embed,
            serializer,
        })
    }

    /// Whether the message was given back to the queue after a delivery (kombu marks
    /// restored messages so).
    pub fn redelivered(&self) -> bool {
        self.headers
            .extra
            .get("redelivered")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Whether the message carries links, a chain or a chord.
    pub fn has_followers(&self) -> bool {
        !self.embed.is_empty()
    }
}

#[derive(Deserialize)]
struct JsonBody(Box<RawValue>, Map<String, Value>, Embed);

fn decode_json_body(body: &[u8]) -> Result<(Box<RawValue>, Map<String, Value>, Embed)> {
    let JsonBody(args, kwargs, embed) = serde_json::from_slice(body)
        .map_err(|e| Error::Protocol(format!("body is not [args, kwargs, embed]: {e}")))?;
    if !args.get().starts_with('[') {
        return Err(Error::Protocol(format!(
            "task arguments are not a list: {}",
            truncate(args.get(), 80)
        )));
    }
    Ok((args, kwargs, embed))
}

fn decode_msgpack_body(body: &[u8]) -> Result<(Box<RawValue>, Map<String, Value>, Embed)> {
    let (args, kwargs, embed): (Vec<Value>, Map<String, Value>, Embed) =
        rmp_serde::from_slice(body).map_err(|e| {
            Error::Protocol(format!("msgpack body is not [args, kwargs, embed]: {e}"))
        })?;
    let args =
        serde_json::value::to_raw_value(&args).map_err(|e| Error::Protocol(e.to_string()))?;
    Ok((args, kwargs, embed))
}

/// At most `max` bytes of `text`, on a character boundary, with `...` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An envelope written by Celery 5.x's `send_task` (captured from Redis).
    const PYTHON_ENVELOPE: &str = r#"{"body": "W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "tasks.add", "id": "2abe8f41-97ae-4b51-af04-aae7086f9d12", "shadow": null, "eta": "2026-11-26T09:04:54.894329+00:00", "expires": "2026-11-26T09:05:44.894329+00:00", "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "2abe8f41-97ae-4b51-af04-aae7086f9d12", "parent_id": null, "argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "gen4178@vm", "ignore_result": null, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "2abe8f41-97ae-4b51-af04-aae7086f9d12", "reply_to": "94608a4e-fd06-37f9-948e-ae6da60d8d87", "delivery_mode": 2, "expiration": "60000", "delivery_info": {"exchange": "", "routing_key": "probeq"}, "priority": 5, "body_encoding": "base64", "delivery_tag": "cf21bb8f-f351-4edf-be9f-9e8c0d9c6dd4"}}"#;

    #[test]
    fn decodes_what_celery_sends() {
        let m = TaskMessage::decode(PYTHON_ENVELOPE.as_bytes()).unwrap();
        assert_eq!(m.task(), "tasks.add");
        assert_eq!(m.id(), "2abe8f41-97ae-4b51-af04-aae7086f9d12");
        assert_eq!(m.args.get(), "[2, 3]");
        assert!(m.kwargs.is_empty());
        assert_eq!(m.embed, Embed::default());
        assert_eq!(m.properties.priority, 5);
        assert_eq!(m.properties.delivery_info.routing_key, "probeq");
        assert_eq!(m.properties.extra["expiration"], "60000");
        assert_eq!(
            clock::isoformat(m.headers.eta().unwrap().unwrap()),
            "2026-11-26T09:04:54.894329+00:00"
        );
        assert_eq!(m.headers.timelimit, (None, None));
        // Encoding and decoding again keeps everything.
        let again = TaskMessage::decode(&m.encode().unwrap()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn body_is_celerys_three_element_list() {
        let args = serde_json::value::to_raw_value(&(1, "x")).unwrap();
        let m = TaskMessage::new("t", "id-1", args, "celery").unwrap();
        let envelope: Value = serde_json::from_slice(&m.encode().unwrap()).unwrap();
        let body = BASE64.decode(envelope["body"].as_str().unwrap()).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!([[1, "x"], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}])
        );
        assert_eq!(envelope["content-type"], "application/json");
        assert_eq!(envelope["properties"]["body_encoding"], "base64");
        assert_eq!(
            envelope["properties"]["delivery_info"]["routing_key"],
            "celery"
        );
        assert_eq!(envelope["headers"]["root_id"], "id-1");
    }

    #[test]
    fn malformed_messages_are_protocol_errors() {
        let bad: &[&[u8]] = &[
            b"not json",
            b"{}",
            br#"{"body": "W10=", "content-type": "application/json", "headers": {"task": "t"}, "properties": {}}"#,
            // A two-element body, which makes Celery's worker crash-loop.
            br#"{"body": "W1tdLCB7fV0=", "content-type": "application/json", "headers": {"task": "t", "id": "x"}, "properties": {}}"#,
            br#"{"body": "!!!", "content-type": "application/json", "headers": {"task": "t", "id": "x"}, "properties": {}}"#,
            br#"{"body": "W10=", "content-type": "application/x-python-serialize", "headers": {"task": "t", "id": "x"}, "properties": {}}"#,
        ];
        for payload in bad {
            let err = TaskMessage::decode(payload).unwrap_err();
            assert!(matches!(err, Error::Protocol(_)), "{err}");
        }
        let salvage = Salvage::from_payload(bad[3]);
        assert_eq!(salvage.id.as_deref(), Some("x"));
        assert_eq!(salvage.task.as_deref(), Some("t"));
        assert_eq!(Salvage::from_payload(b"nope"), Salvage::default());
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h...");
        assert_eq!(truncate("abc", 5), "abc");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn envelopes_round_trip(
            args in proptest::collection::vec(json_value(), 0..5),
            kwargs in proptest::collection::btree_map("[a-z]{1,8}", json_value(), 0..3),
            task in "[a-z.]{1,20}",
            queue in "[a-z0-9_-]{1,12}",
            retries in 0u32..100,
            priority in 0u8..10,
            eta in proptest::option::of(0i64..4_000_000_000),
            msgpack in any::<bool>(),
            chain in proptest::option::of(proptest::collection::vec(json_value(), 0..3)),
        ) {
            let id = uuid::Uuid::new_v4().to_string();
            let raw = serde_json::value::to_raw_value(&args).unwrap();
            let mut m = TaskMessage::new(&task, &id, raw, &queue).unwrap();
            m.kwargs = kwargs.into_iter().collect();
            m.headers.retries = retries;
            m.properties.priority = priority;
            m.headers.eta = eta.map(|s| clock::isoformat(DateTime::from_timestamp(s, 0).unwrap()));
            m.embed.chain = chain;
            if msgpack {
                m.serializer = Serializer::Msgpack;
            }
            let decoded = TaskMessage::decode(&m.encode().unwrap()).unwrap();
            prop_assert_eq!(decoded.args_values().unwrap(), args);
            prop_assert_eq!(&decoded.kwargs, &m.kwargs);
            prop_assert_eq!(&decoded.headers, &m.headers);
            prop_assert_eq!(&decoded.properties, &m.properties);
            prop_assert_eq!(&decoded.embed, &m.embed);
            prop_assert_eq!(decoded.serializer, m.serializer);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _outcome = TaskMessage::decode(&bytes);
            let _salvage = Salvage::from_payload(&bytes);
        }
    }
}
