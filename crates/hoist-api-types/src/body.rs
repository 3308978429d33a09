//! Decoding a JSON body into a wire type with an error that names the field.

use serde::de::DeserializeOwned;

/// A body that did not decode: `field` is the JSON path of the offending value (`.` for the
/// body as a whole), `message` serde's rule ("invalid type: string \"x\", expected u32",
/// "unknown field `x`, expected one of ...", "unknown variant `x`, expected one of ...").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field == "." || self.field.is_empty() {
            write!(f, "invalid request body: {}", self.message)
        } else {
            write!(f, "invalid field `{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for BodyError {}

/// Decodes `bytes` as a `T`, naming the field of the first error.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| BodyError {
        field: ".".into(),
        message: strip_position(&e.to_string()),
    })?;
    Ok(value)
}

/// Decodes an already parsed JSON value as a `T`, naming the field of the first error; for
/// types whose `Deserialize` splits a body in parts (see [`crate::DeployRequest`]).
pub fn from_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, BodyError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

fn path_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> BodyError {
    let message = strip_position(&e.inner().to_string());
    let field = e.path().to_string();
    // A part decoded on its own (a flattened part) reports its own path in the message:
    // `invalid field `x`: ...` bubbles up through `custom`, keep it as it is.
    if let Some(rest) = message.strip_prefix("invalid field `")
        && let Some((inner, msg)) = rest.split_once("`: ")
    {
        return BodyError {
            field: inner.to_string(),
            message: msg.to_string(),
        };
    }
    // serde_path_to_error puts an unknown key into the path, and serde's message names it
    // already: the field at fault is the object holding it.
    let field = if message.starts_with("unknown field") {
        field
            .rsplit_once('.')
            .map_or_else(|| ".".to_string(), |(parent, _)| parent.to_string())
    } else {
        field
    };
    BodyError { field, message }
}

/// serde_json appends " at line 1 column 17", which tells a person nothing the field name
/// does not.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_string(),
        _ => message.to_string(),
    }
}
