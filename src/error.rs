//! Client-facing errors in the OpenAI error shape:
//! `{"error":{"message":…,"type":…,"code":…}}`.

use serde::Serialize;

/// An error answered to the client by the filter itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u32,
    /// OpenAI error `type`.
    pub kind: &'static str,
    /// Stable machine-readable `code`.
    pub code: &'static str,
    /// Human-readable message; never contains request content.
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: &'a str,
}

impl ApiError {
    /// 400: the body is not a valid JSON object.
    pub fn invalid_json(message: &str) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: "invalid_json",
            message: message.to_string(),
        }
    }

    /// 413: the body exceeds `max_body_bytes`.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError {
            status: 413,
            kind: "invalid_request_error",
            code: "request_too_large",
            message: format!("request body exceeds the limit of {limit} bytes"),
        }
    }

    /// 400: the request body could not be scanned for PII (`on_error: block`).
    pub fn request_unscannable(why: &str) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: "redaction_failed",
            message: format!("request body could not be scanned for sensitive data: {why}"),
        }
    }

    /// 502: the model's response could not be scanned for PII (`on_error: block`).
    pub fn response_unscannable(why: &str) -> ApiError {
        ApiError {
            status: 502,
            kind: "server_error",
            code: "redaction_failed",
            message: format!("the model response could not be scanned for sensitive data: {why}"),
        }
    }

    /// The JSON body sent to the client.
    pub fn body(&self) -> Vec<u8> {
        let envelope = Envelope {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                code: self.code,
            },
        };
        serde_json::to_vec(&envelope).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_openai_shape() {
        let e = ApiError::too_large(10);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap_or_default();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "request_too_large");
        assert_eq!(
            v["error"]["message"],
            "request body exceeds the limit of 10 bytes"
        );
        assert_eq!(e.status, 413);
    }
}
