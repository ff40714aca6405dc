//! Host functions for guests: the tool protocol (version 1) that CPython for WASI speaks through
//! its `host::call` door (`from host import tools`), answered from the VM's registered toolkits.
//!
//! A frame is one JSON object: `{"v":1,"id":N,"op":"list"}` asks for the tools
//! (`{"v":1,"id":N,"ok":true,"tools":[{"name","description","inputSchema"}]}`);
//! `{"v":1,"id":N,"op":"call","tool":NAME,"args":{...}}` calls one, which is a
//! `HostCallbackRequest` to the host: the guest's call waits (the process parks, as for a
//! permission prompt) until the host answers, the callback's timeout passes or the VM goes, and
//! then gets `{"v":1,"id":N,"ok":true,"value":V}` or
//! `{"v":1,"id":N,"ok":false,"error":{"kind":K,"message":M}}`. A frame that breaks the rules is
//! answered with kind `protocol`, never a fault. A VM with no toolkit has no host behind the
//! door (`ENOSYS`: the guest sees "no host").
//!
//! Each call is checked against the VM's `tool.invoke` permissions on its callback key.

use serde_json::{json, Map, Value};

use super::{SysError, SysResult, Syscalls};
use crate::policy::permissions::{Capability, Decision};
use crate::process::cost;
use crate::process::table::{ToolCall, ToolCallState, Wait};
use crate::vfs::Errno;
use crate::vm::OfferedTool;

/// The protocol version served.
pub const TOOL_PROTOCOL: u64 = 1;
/// The largest frame a guest may send: the protocol's own cap on a request.
pub const MAX_TOOL_FRAME_BYTES: usize = 1 << 20;
/// The longest message (in characters) an error answer carries.
const MAX_TOOL_MESSAGE_CHARS: usize = 4096;

impl Syscalls {
    /// Answers one tool-protocol `frame` (see the module docs). `ENOSYS` when the VM offers no
    /// tools; `WouldBlock` while a call's host callback is out (the same frame is asked again).
    pub fn host_call(&mut self, frame: &[u8]) -> SysResult<Vec<u8>> {
        self.charge(cost::SYSCALL_FUEL.saturating_add(cost::FUEL_PER_BYTE.saturating_mul(frame.len() as u64)));
        let answer = self.answer_frame(frame)?;
        // A small frame can ask for a large answer (the list of every tool): it is paid too.
        self.charge(cost::FUEL_PER_BYTE.saturating_mul(answer.len() as u64));
        Ok(answer)
    }

    fn answer_frame(&mut self, frame: &[u8]) -> SysResult<Vec<u8>> {
        let process = self.process_mut()?;
        if let Some(call) = process.tool_call.take_if(|call| call.frame == frame) {
            return match call.state {
                ToolCallState::Answered(answer) => Ok(answer),
                state => {
                    process.tool_call = Some(ToolCall { state, ..call });
                    Err(SysError::WouldBlock)
                }
            };
        }
        let offered = self.vm.offered_tools();
        if offered.is_empty() {
            return Err(Errno::ENOSYS.into());
        }
        if frame.len() > MAX_TOOL_FRAME_BYTES {
            let message = format!("the frame is over the {MAX_TOOL_FRAME_BYTES}-byte cap");
            return Ok(error_frame(None, "too_large", &message));
        }
        let request = match serde_json::from_slice::<Value>(frame) {
            Ok(Value::Object(request)) => request,
            Ok(_) => return Ok(error_frame(None, "protocol", "a frame is a JSON object")),
            Err(error) => return Ok(error_frame(None, "protocol", &format!("the frame is not JSON: {error}"))),
        };
        let frame_id = request.get("id").and_then(Value::as_u64);
        if request.get("v").and_then(Value::as_u64) != Some(TOOL_PROTOCOL) {
            let message = format!("this host serves protocol version {TOOL_PROTOCOL}");
            return Ok(error_frame(frame_id, "protocol", &message));
        }
        match request.get("op").and_then(Value::as_str) {
            Some("list") => Ok(tool_list(&offered, frame_id)),
            Some("call") => match self.check_tool_call(&offered, frame_id, &request) {
                Ok((key, input)) => self.park_tool_call(frame, frame_id, key, input),
                Err(refusal) => Ok(refusal),
            },
            _ => Ok(error_frame(frame_id, "protocol", "unknown operation; this host serves list and call")),
        }
    }

    /// The callback key and JSON input of a call, or the answer that refuses it.
    fn check_tool_call(
        &self,
        offered: &[OfferedTool<'_>],
        frame_id: Option<u64>,
        request: &Map<String, Value>,
    ) -> Result<(String, String), Vec<u8>> {
        let Some(name) = request.get("tool").and_then(Value::as_str) else {
            return Err(error_frame(frame_id, "protocol", "a call names its tool with a string"));
        };
        let Some(tool) = offered.iter().find(|tool| tool.name == name) else {
            let names: Vec<&str> = offered.iter().map(|tool| tool.name.as_str()).collect();
            let message = format!("no tool named {name:?}; this VM offers: {}", names.join(", "));
            return Err(error_frame(frame_id, "unknown_tool", &message));
        };
        let input = match request.get("args") {
            None => "{}".to_owned(),
            Some(args @ Value::Object(_)) => args.to_string(),
            Some(_) => {
                let message = format!("{name}: the arguments must be an object");
                return Err(error_frame(frame_id, "invalid_arguments", &message));
            }
        };
        let key = &tool.key;
        match self.vm.policy().decide(Capability::ToolInvoke, key, false) {
            Decision::Allow => Ok((key.clone(), input)),
            Decision::Deny { message } => Err(error_frame(frame_id, "denied", &format!("{key}: {message}"))),
            Decision::Ask => {
                let message = format!("{key}: a permission prompt is required for tool.invoke");
                Err(error_frame(frame_id, "denied", &message))
            }
        }
    }

    /// Parks the process until the call's host callback is answered (the dispatcher sends it
    /// and fills in the answer: `serve_tool_calls`).
    fn park_tool_call(
        &mut self,
        frame: &[u8],
        frame_id: Option<u64>,
        key: String,
        input: String,
    ) -> SysResult<Vec<u8>> {
        let process = self.process_mut()?;
        process.tool_call =
            Some(ToolCall { frame: frame.to_vec(), frame_id, state: ToolCallState::Needed { key, input } });
        process.wait = Wait::Tool;
        Err(SysError::WouldBlock)
    }
}

/// The `list` answer: every offered tool's name, description and input schema.
fn tool_list(offered: &[OfferedTool<'_>], frame_id: Option<u64>) -> Vec<u8> {
    let tools: Vec<Value> = offered
        .iter()
        .map(|tool| {
            let schema = serde_json::from_str::<Value>(&tool.definition.input_schema)
                .unwrap_or_else(|_| json!({"type": "object"}));
            json!({"name": tool.name, "description": tool.definition.description, "inputSchema": schema})
        })
        .collect();
    frame_bytes(json!({"v": TOOL_PROTOCOL, "id": frame_id, "ok": true, "tools": tools}))
}

/// The answer of a call whose host callback gave the JSON `result`.
pub(crate) fn result_frame(frame_id: Option<u64>, key: &str, result: &str) -> Vec<u8> {
    match serde_json::from_str::<Value>(result) {
        Ok(value) => frame_bytes(json!({"v": TOOL_PROTOCOL, "id": frame_id, "ok": true, "value": value})),
        Err(_) => error_frame(frame_id, "tool_error", &format!("{key}: the host's result is not JSON")),
    }
}

/// An error answer; the message is cut at [`MAX_TOOL_MESSAGE_CHARS`].
pub(crate) fn error_frame(frame_id: Option<u64>, kind: &str, message: &str) -> Vec<u8> {
    let message: String = message.chars().take(MAX_TOOL_MESSAGE_CHARS).collect();
    frame_bytes(json!({"v": TOOL_PROTOCOL, "id": frame_id, "ok": false, "error": {"kind": kind, "message": message}}))
}

fn frame_bytes(frame: Value) -> Vec<u8> {
    // A `Value` always serializes.
    serde_json::to_vec(&frame).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn an_error_answer_echoes_its_id_and_bounds_its_message() {
        let answer: Value =
            serde_json::from_slice(&error_frame(Some(7), "tool_error", &"x".repeat(10_000))).unwrap_or_default();
        assert_eq!(
            (answer["v"].as_u64(), answer["id"].as_u64(), answer["ok"].as_bool()),
            (Some(1), Some(7), Some(false))
        );
        assert_eq!(answer["error"]["kind"], "tool_error");
        assert_eq!(answer["error"]["message"].as_str().map(str::len), Some(MAX_TOOL_MESSAGE_CHARS));
        let value: Value = serde_json::from_slice(&result_frame(None, "k:t", "[1,2]")).unwrap_or_default();
        assert_eq!((value["id"].is_null(), value["value"].clone()), (true, json!([1, 2])));
        let bad: Value = serde_json::from_slice(&result_frame(None, "k:t", "not json")).unwrap_or_default();
        assert_eq!(bad["error"]["kind"], "tool_error");
    }
}
