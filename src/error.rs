//! Client-facing errors in the OpenAI error shape:
//! `{"error":{"message":…,"type":…,"code":…}}`.

use crate::json::push_string;

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

    /// 400: the prompt is over `max_input_tokens`.
    pub fn context_budget_exceeded(estimate: u64, limit: u64) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: "context_budget_exceeded",
            message: format!("the prompt is about {estimate} tokens; the limit is {limit}"),
        }
    }

    /// 400: the request matched a moderation pattern.
    pub fn content_blocked() -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: "content_blocked",
            message: "the request was blocked by a content policy".into(),
        }
    }

    /// 403: the request offers tools outside the allowlist.
    pub fn tool_not_allowed(names: &[String]) -> ApiError {
        ApiError {
            status: 403,
            kind: "invalid_request_error",
            code: "tool_not_allowed",
            message: format!("tools not allowed: {}", names.join(", ")),
        }
    }

    /// 502: the model called a tool outside the allowlist.
    pub fn tool_call_not_allowed() -> ApiError {
        ApiError {
            status: 502,
            kind: "server_error",
            code: "tool_not_allowed",
            message: "the model called a tool that is not allowed".into(),
        }
    }

    /// 429: the key's token quota for this minute is used up.
    pub fn token_quota_exceeded(retry_after_s: u64) -> ApiError {
        ApiError {
            status: 429,
            kind: "rate_limit_error",
            code: "token_quota_exceeded",
            message: format!("token quota exceeded; retry after {retry_after_s} s"),
        }
    }

    /// 504: the model backend did not answer within the timeout budget.
    pub fn upstream_timeout() -> ApiError {
        ApiError {
            status: 504,
            kind: "server_error",
            code: "upstream_timeout",
            message: "the model backend did not answer within the timeout budget".into(),
        }
    }

    /// 502: the model's output failed the response schema.
    pub fn schema_validation_failed(why: &str) -> ApiError {
        ApiError {
            status: 502,
            kind: "server_error",
            code: "schema_validation_failed",
            message: format!("the model output does not match the response schema ({why})"),
        }
    }

    /// 400: a streamed answer of this API cannot be checked yet.
    pub fn stream_unreadable(api: &str) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: "stream_not_checkable",
            message: format!(
                "streamed {api} answers cannot be checked by this gateway yet and response \
                 redaction or output guardrails are on: send the request without `stream`"
            ),
        }
    }

    /// 502: the model streamed (unasked) an answer of an API whose streams
    /// cannot be checked yet.
    pub fn stream_unreadable_answer(api: &str) -> ApiError {
        ApiError {
            status: 502,
            kind: "server_error",
            code: "stream_not_checkable",
            message: format!(
                "the model answered with a {api} stream, which this gateway cannot check yet \
                 while response redaction or output guardrails are on"
            ),
        }
    }

    /// 415: the request body is compressed and the filter cannot read it.
    pub fn request_encoded(encoding: &str) -> ApiError {
        ApiError {
            status: 415,
            kind: "invalid_request_error",
            code: "unsupported_content_encoding",
            message: format!(
                "the request body is {encoding}-encoded and the gateway reads request bodies \
                 uncompressed: send it without content-encoding (or add Envoy's decompressor \
                 filter before llm-ab)"
            ),
        }
    }

    /// 502: the model's response is compressed, so it could not be checked.
    pub fn response_encoded(encoding: &str) -> ApiError {
        ApiError {
            status: 502,
            kind: "server_error",
            code: "unsupported_content_encoding",
            message: format!(
                "the model response is {encoding}-encoded and could not be checked: the gateway \
                 needs Envoy's decompressor filter after llm-ab (or upstreams asked for identity)"
            ),
        }
    }

    /// The body in Anthropic's shape, `{"type":"error","error":{"type",
    /// "message"}}`, with the error type Anthropic uses for the status
    /// (the Anthropic SDK picks its exception class by status and reads
    /// the message from here).
    pub fn anthropic_body(&self) -> Vec<u8> {
        let kind = match self.status {
            400 | 415 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ if self.status >= 500 => "api_error",
            _ => "invalid_request_error",
        };
        // The keys in the order serde_json's map wrote them (sorted).
        let mut out = b"{\"error\":{\"message\":".to_vec();
        push_string(&mut out, &self.message);
        out.extend_from_slice(b",\"type\":");
        push_string(&mut out, kind);
        out.extend_from_slice(b"},\"type\":\"error\"}");
        out
    }

    /// 502: a guardrail stopped the model's streamed output.
    pub fn output_blocked() -> ApiError {
        ApiError {
            status: 502,
            kind: "server_error",
            code: "output_blocked",
            message: "the model's output was stopped by a guardrail".into(),
        }
    }

    /// The `data` of a Responses stream's `error` event for this error,
    /// numbered `sequence` (`{"type":"error","code","message","param",
    /// "sequence_number"}`, as the API sends an error mid-stream).
    pub fn responses_error_event(&self, sequence: u64) -> String {
        // The keys in the order serde_json's map wrote them (sorted).
        let mut out = b"{\"code\":".to_vec();
        push_string(&mut out, self.code);
        out.extend_from_slice(b",\"message\":");
        push_string(&mut out, &self.message);
        out.extend_from_slice(b",\"param\":null,\"sequence_number\":");
        crate::json::push_decimal(&mut out, sequence);
        out.extend_from_slice(b",\"type\":\"error\"}");
        String::from_utf8(out).unwrap_or_default()
    }

    /// The JSON body sent to the client.
    pub fn body(&self) -> Vec<u8> {
        let mut out = b"{\"error\":{\"message\":".to_vec();
        push_string(&mut out, &self.message);
        out.extend_from_slice(b",\"type\":");
        push_string(&mut out, self.kind);
        out.extend_from_slice(b",\"code\":");
        push_string(&mut out, self.code);
        out.extend_from_slice(b"}}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each error body is the bytes serde_json wrote for it before.
    #[test]
    fn bodies_are_the_bytes_serde_json_wrote() {
        for message in ["plain", "a \"quoted\" \\ path\n", "\u{1}é"] {
            for status in [400, 401, 403, 404, 413, 415, 429, 500, 503, 529] {
                let e = ApiError {
                    status,
                    kind: "invalid_request_error",
                    code: "invalid_json",
                    message: message.into(),
                };
                let openai = serde_json::json!({"error": {"message": message, "type": e.kind, "code": e.code}});
                // `Envelope` was a struct: its fields in declaration order.
                let want = format!(
                    "{{\"error\":{{\"message\":{},\"type\":{},\"code\":{}}}}}",
                    openai["error"]["message"], openai["error"]["type"], openai["error"]["code"]
                );
                assert_eq!(String::from_utf8(e.body()).unwrap(), want);
                let v: serde_json::Value = serde_json::from_slice(&e.anthropic_body()).unwrap();
                assert_eq!(e.anthropic_body(), serde_json::to_vec(&v).unwrap());
                assert_eq!(v["error"]["message"], message);
                let event = serde_json::json!({
                    "type": "error",
                    "code": e.code,
                    "message": e.message,
                    "param": null,
                    "sequence_number": 7,
                });
                assert_eq!(e.responses_error_event(7), event.to_string());
            }
        }
    }

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

    #[test]
    fn anthropic_bodies_have_anthropic_types() {
        for (e, kind) in [
            (ApiError::too_large(10), "request_too_large"),
            (ApiError::content_blocked(), "invalid_request_error"),
            (
                ApiError::tool_not_allowed(&["x".into()]),
                "permission_error",
            ),
            (ApiError::token_quota_exceeded(3), "rate_limit_error"),
            (ApiError::upstream_timeout(), "api_error"),
            (ApiError::request_encoded("gzip"), "invalid_request_error"),
        ] {
            let v: serde_json::Value =
                serde_json::from_slice(&e.anthropic_body()).unwrap_or_default();
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], kind, "{}", e.code);
            assert_eq!(v["error"]["message"], e.message.as_str());
            assert_eq!(v.as_object().map(|o| o.len()), Some(2));
        }
    }

    #[test]
    fn encoding_errors_name_the_encoding() {
        let e = ApiError::request_encoded("gzip");
        assert_eq!((e.status, e.code), (415, "unsupported_content_encoding"));
        assert!(e.message.contains("gzip-encoded"), "{}", e.message);
        let e = ApiError::response_encoded("br");
        assert_eq!((e.status, e.kind), (502, "server_error"));
        assert!(e.message.contains("br-encoded"), "{}", e.message);
    }
}
