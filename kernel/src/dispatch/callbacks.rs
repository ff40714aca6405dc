//! Sidecar-initiated requests: host callbacks (a guest invokes a registered command, the host
//! answers) and permission prompts (an ASK rule, when the host opted in). Both are requests with
//! negative ids, a deadline on the injected clock, and exactly one outcome: the host's answer,
//! a timeout, or cancellation when their VM goes away.

use crate::dispatch::{Sidecar, StreamId, MAX_PENDING_SIDECAR_REQUESTS};
use crate::error::{RejectCode, Rejection};
use crate::fs::js_bridge::{self, BridgeCall, BridgeReply, JS_BRIDGE_TIMEOUT_MS};
use crate::fs::CallOutcome;
use crate::vm::{PromptOutcome, PromptTicket};
use schema::wire::*;
use std::collections::{BTreeMap, BTreeSet};

/// Namespace of permission-prompt requests (`SidecarRequestFrame` with an `ExtEnvelope`) and of
/// their answers. Request payload: JSON `{"capability","operation","resource"}`; answer payload:
/// JSON `{"decision": "allow" | "deny"}` (anything else denies).
pub const PERMISSION_PROMPT_NAMESPACE: &str = "dev.secure-exec.permission-prompt";

/// Identifies one host-callback invocation (`"{callbackKey}:{n}"`).
pub type InvocationId = String;

/// How a host callback ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCallbackOutcome {
    /// The host's JSON result.
    Result(String),
    /// The host's error message.
    Error(String),
    TimedOut,
    /// The VM was disposed before the host answered.
    Cancelled,
}

#[derive(Debug)]
enum PendingKind {
    /// A guest's call of a host function (see `syscalls::tools`), or the `testing` door's.
    HostCallback {
        invocation_id: InvocationId,
    },
    Prompt {
        ticket: PromptTicket,
        capability: String,
    },
    /// A host request parked until the host answers a js_bridge call.
    JsBridge {
        call_id: String,
        parked: Box<Parked>,
    },
}

/// A host request whose response waits for a js_bridge answer.
#[derive(Debug)]
pub(crate) struct Parked {
    pub request_id: i64,
    pub ownership: OwnershipScope,
    pub reply: BridgeReply,
}

#[derive(Debug)]
struct Pending {
    stream: StreamId,
    ownership: OwnershipScope,
    vm_id: String,
    deadline_ms: u64,
    kind: PendingKind,
}

/// An expired or cancelled request, to be completed by the sidecar.
#[derive(Debug)]
pub(crate) struct Expired(Pending);

/// Sidecar-initiated requests in flight, by (negative) request id.
#[derive(Debug, Default)]
pub(crate) struct PendingRequests {
    next_request_id: i64,
    next_invocation: u64,
    next_ticket: u64,
    pending: BTreeMap<i64, Pending>,
    /// Deadlines in order, for `next_deadline` and `expire` without scanning.
    deadlines: BTreeSet<(u64, i64)>,
    callback_outcomes: BTreeMap<InvocationId, HostCallbackOutcome>,
    prompt_outcomes: BTreeMap<PromptTicket, PromptOutcome>,
}

impl PendingRequests {
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    fn insert(&mut self, pending: Pending) -> Result<i64, Rejection> {
        if self.pending.len() >= MAX_PENDING_SIDECAR_REQUESTS {
            return Err(Rejection::limit("pending sidecar requests", MAX_PENDING_SIDECAR_REQUESTS));
        }
        // Sidecar ids count down from -1, so they never meet the host's positive ids.
        self.next_request_id = self.next_request_id.checked_sub(1).unwrap_or(-1);
        let id = self.next_request_id;
        self.deadlines.insert((pending.deadline_ms, id));
        self.pending.insert(id, pending);
        Ok(id)
    }

    fn take(&mut self, request_id: i64) -> Option<Pending> {
        let pending = self.pending.remove(&request_id)?;
        self.deadlines.remove(&(pending.deadline_ms, request_id));
        Some(pending)
    }

    pub(crate) fn expire(&mut self, now_ms: u64) -> Vec<Expired> {
        let due: Vec<i64> =
            self.deadlines.iter().take_while(|(deadline, _)| *deadline <= now_ms).map(|(_, id)| *id).collect();
        due.into_iter().filter_map(|id| self.take(id)).map(Expired).collect()
    }

    /// Ends everything `vm_id` waits on; returns the parked host requests (with their stream),
    /// which still owe a response.
    pub(crate) fn cancel_vm(&mut self, vm_id: &str) -> Vec<(StreamId, Box<Parked>)> {
        let mut parked_requests = Vec::new();
        let ids: Vec<i64> = self.pending.iter().filter(|(_, p)| p.vm_id == vm_id).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(pending) = self.take(id) {
                match pending.kind {
                    PendingKind::HostCallback { invocation_id } => {
                        self.callback_outcomes.insert(invocation_id, HostCallbackOutcome::Cancelled);
                    }
                    PendingKind::Prompt { ticket, capability } => {
                        let message = format!("permission prompt for {capability} cancelled: VM disposed");
                        self.prompt_outcomes.insert(ticket, PromptOutcome::Denied(message));
                    }
                    PendingKind::JsBridge { parked, .. } => parked_requests.push((pending.stream, parked)),
                }
            }
        }
        // Outcomes nobody can collect any more are dropped with their VM.
        self.callback_outcomes.retain(|_, outcome| *outcome != HostCallbackOutcome::Cancelled);
        parked_requests
    }
}

impl Sidecar {
    /// A guest in `vm_id` invokes host callback `callback_key` (`toolkit:tool`, or a registry
    /// command alias) with JSON `input`: a `HostCallbackRequest` goes to the host, and the
    /// outcome appears in [`take_host_callback_outcome`](Self::take_host_callback_outcome).
    /// Guests reach it through the tool protocol (`syscalls::tools`); tests and the simulator
    /// also through this door.
    #[cfg(feature = "testing")]
    pub fn invoke_host_callback(
        &mut self,
        vm_id: &str,
        callback_key: &str,
        input: &str,
    ) -> Result<InvocationId, Rejection> {
        self.start_host_callback(vm_id, callback_key, input)
    }

    /// Sends the `HostCallbackRequest` of `callback_key` with `input` for `vm_id` (see
    /// [`invoke_host_callback`](Self::invoke_host_callback)).
    pub(crate) fn start_host_callback(
        &mut self,
        vm_id: &str,
        callback_key: &str,
        input: &str,
    ) -> Result<InvocationId, Rejection> {
        let vm = self.vms.get(vm_id).ok_or_else(|| crate::dispatch::unknown_vm(vm_id))?;
        let timeout_ms = vm
            .callback_timeout_ms(callback_key)
            .ok_or_else(|| Rejection::invalid_state(format!("unknown tool callback {callback_key}")))?;
        let (stream, ownership) = (vm.stream(), vm.scope());
        self.callbacks.next_invocation += 1;
        let invocation_id = format!("{callback_key}:{}", self.callbacks.next_invocation);
        let pending = Pending {
            stream,
            ownership: ownership.clone(),
            vm_id: vm_id.to_owned(),
            deadline_ms: self.now.monotonic_ms.saturating_add(timeout_ms),
            kind: PendingKind::HostCallback { invocation_id: invocation_id.clone() },
        };
        let request_id = self.callbacks.insert(pending)?;
        let payload = SidecarRequestPayload::HostCallbackRequest(HostCallbackRequest {
            invocation_id: invocation_id.clone(),
            callback_key: callback_key.to_owned(),
            input: input.to_owned(),
            timeout_ms,
        });
        if let Err(error) = self.send_sidecar_request(stream, request_id, ownership, payload) {
            self.callbacks.take(request_id);
            return Err(Rejection::new(RejectCode::FrameTooLarge, error.rejection_message()));
        }
        Ok(invocation_id)
    }

    /// Whether the host callback `invocation_id` has its outcome.
    pub(crate) fn has_callback_outcome(&self, invocation_id: &str) -> bool {
        self.callbacks.callback_outcomes.contains_key(invocation_id)
    }

    /// The outcome of a host callback, once it has one (taken: asked again, it is `None`).
    pub fn take_host_callback_outcome(&mut self, invocation_id: &str) -> Option<HostCallbackOutcome> {
        self.callbacks.callback_outcomes.remove(invocation_id)
    }

    /// Sends a permission prompt for `capability` on `resource` in `vm_id`; the host's answer
    /// (or the timeout's denial) appears in [`take_prompt_outcome`](Self::take_prompt_outcome).
    pub(crate) fn send_prompt(
        &mut self,
        vm_id: &str,
        capability: &str,
        resource: &str,
        timeout_ms: u64,
    ) -> Result<PromptTicket, Rejection> {
        let vm = self.vms.get(vm_id).ok_or_else(|| crate::dispatch::unknown_vm(vm_id))?;
        let (stream, ownership) = (vm.stream(), vm.scope());
        self.callbacks.next_ticket += 1;
        let ticket = PromptTicket(self.callbacks.next_ticket);
        let pending = Pending {
            stream,
            ownership: ownership.clone(),
            vm_id: vm_id.to_owned(),
            deadline_ms: self.now.monotonic_ms.saturating_add(timeout_ms),
            kind: PendingKind::Prompt { ticket, capability: capability.to_owned() },
        };
        let request_id = self.callbacks.insert(pending)?;
        let operation = capability.split_once('.').map_or(capability, |(_, operation)| operation);
        let body = serde_json::json!({ "capability": capability, "operation": operation, "resource": resource });
        let payload = SidecarRequestPayload::ExtEnvelope(ExtEnvelope {
            namespace: PERMISSION_PROMPT_NAMESPACE.to_owned(),
            payload: body.to_string().into_bytes(),
        });
        if let Err(error) = self.send_sidecar_request(stream, request_id, ownership, payload) {
            self.callbacks.take(request_id);
            return Err(Rejection::new(RejectCode::FrameTooLarge, error.rejection_message()));
        }
        Ok(ticket)
    }

    /// Whether the permission prompt `ticket` has its outcome (without taking it).
    pub(crate) fn has_prompt_outcome(&self, ticket: PromptTicket) -> bool {
        self.callbacks.prompt_outcomes.contains_key(&ticket)
    }

    /// The outcome of a permission prompt, once it has one.
    pub fn take_prompt_outcome(&mut self, ticket: PromptTicket) -> Option<PromptOutcome> {
        self.callbacks.prompt_outcomes.remove(&ticket)
    }

    pub(crate) fn handle_sidecar_response(&mut self, stream: StreamId, response: SidecarResponseFrame) {
        let request_id = response.request_id;
        let matches = self
            .callbacks
            .pending
            .get(&request_id)
            .map(|pending| (pending.stream == stream, pending.ownership == response.ownership));
        // A request pending on another stream looks exactly like no request at all.
        let problem = match matches {
            None | Some((false, _)) => {
                Some(format!("sidecar response {request_id} does not match any pending request"))
            }
            Some((true, false)) => Some(format!("sidecar response {request_id} carries the wrong ownership")),
            Some((true, true)) => None,
        };
        if let Some(message) = problem {
            return self.protocol_error(stream, "unknown_sidecar_response", &message, Some(request_id));
        }
        let Some(pending) = self.callbacks.take(request_id) else { return };
        match (pending.kind, response.payload) {
            (
                PendingKind::HostCallback { invocation_id },
                SidecarResponsePayload::HostCallbackResultResponse(result),
            ) if result.invocation_id == invocation_id => {
                let outcome = match (result.result, result.error) {
                    (_, Some(error)) => HostCallbackOutcome::Error(error),
                    (Some(json), None) => HostCallbackOutcome::Result(json),
                    (None, None) => HostCallbackOutcome::Error("tool invocation returned no result".to_owned()),
                };
                self.callbacks.callback_outcomes.insert(invocation_id, outcome);
                self.vms.touch(&pending.vm_id);
            }
            (PendingKind::Prompt { ticket, capability }, SidecarResponsePayload::ExtEnvelope(envelope))
                if envelope.namespace == PERMISSION_PROMPT_NAMESPACE =>
            {
                let outcome = prompt_answer(&envelope.payload, &capability);
                self.callbacks.prompt_outcomes.insert(ticket, outcome);
                self.vms.touch(&pending.vm_id);
            }
            (PendingKind::JsBridge { call_id, parked }, SidecarResponsePayload::JsBridgeResultResponse(result))
                if result.call_id == call_id =>
            {
                let Parked { request_id, ownership, reply } = *parked;
                match js_bridge::complete(&reply, result.result, result.error) {
                    Ok(response) => self.respond(pending.stream, request_id, ownership, response),
                    Err(rejection) => self.reject(pending.stream, request_id, ownership, rejection),
                }
            }
            (kind, payload) => {
                // A wrong answer still ends the request: the guest sees an error, never a hang.
                match kind {
                    PendingKind::HostCallback { invocation_id } => {
                        let outcome = HostCallbackOutcome::Error("unexpected sidecar tool response".to_owned());
                        self.callbacks.callback_outcomes.insert(invocation_id, outcome);
                        self.vms.touch(&pending.vm_id);
                    }
                    PendingKind::Prompt { ticket, capability } => {
                        let message = format!("EACCES: unexpected answer to the permission prompt for {capability}");
                        self.callbacks.prompt_outcomes.insert(ticket, PromptOutcome::Denied(message));
                        self.vms.touch(&pending.vm_id);
                    }
                    PendingKind::JsBridge { parked, .. } => {
                        let Parked { request_id, ownership, reply } = *parked;
                        let rejection = js_bridge::mismatched(&reply, payload.member_name());
                        self.reject(pending.stream, request_id, ownership, rejection);
                    }
                }
                let message = format!("sidecar response {request_id} carried {}", payload.member_name());
                self.protocol_error(stream, "mismatched_sidecar_response", &message, Some(request_id));
            }
        }
    }

    pub(crate) fn complete_expired(&mut self, Expired(pending): Expired) {
        let stream = pending.stream;
        match pending.kind {
            PendingKind::HostCallback { invocation_id } => {
                self.callbacks.callback_outcomes.insert(invocation_id, HostCallbackOutcome::TimedOut);
                self.vms.touch(&pending.vm_id);
            }
            PendingKind::Prompt { ticket, capability } => {
                let message = format!("EACCES: permission prompt for {capability} timed out");
                self.callbacks.prompt_outcomes.insert(ticket, PromptOutcome::Denied(message));
                self.vms.touch(&pending.vm_id);
            }
            PendingKind::JsBridge { parked, .. } => {
                let Parked { request_id, ownership, reply } = *parked;
                self.reject(stream, request_id, ownership, js_bridge::timed_out(&reply));
            }
        }
    }

    /// Sends a guest call to the host's js_bridge and parks the host request `request_id`
    /// until the answer (or the timeout, or the VM's end).
    pub(crate) fn start_bridge_call(
        &mut self,
        vm_id: &str,
        request_id: i64,
        ownership: OwnershipScope,
        call: BridgeCall,
    ) -> Result<(), Rejection> {
        let vm = self.vms.get(vm_id).ok_or_else(|| crate::dispatch::unknown_vm(vm_id))?;
        let (stream, vm_scope) = (vm.stream(), vm.scope());
        let BridgeCall { call_id, mount_id, args, reply } = call;
        let payload = SidecarRequestPayload::JsBridgeCallRequest(JsBridgeCallRequest {
            call_id: call_id.clone(),
            mount_id,
            operation: reply.js_operation.to_owned(),
            args,
        });
        let pending = Pending {
            stream,
            ownership: vm_scope.clone(),
            vm_id: vm_id.to_owned(),
            deadline_ms: self.now.monotonic_ms.saturating_add(JS_BRIDGE_TIMEOUT_MS),
            kind: PendingKind::JsBridge { call_id, parked: Box::new(Parked { request_id, ownership, reply }) },
        };
        let sidecar_request_id = self.callbacks.insert(pending)?;
        if let Err(error) = self.send_sidecar_request(stream, sidecar_request_id, vm_scope, payload) {
            self.callbacks.take(sidecar_request_id);
            return Err(Rejection::new(RejectCode::FrameTooLarge, error.rejection_message()));
        }
        Ok(())
    }

    /// Answers a guest filesystem call now, or parks it behind a js_bridge call.
    pub(crate) fn finish_guest_call(
        &mut self,
        vm_id: &str,
        request_id: i64,
        ownership: &OwnershipScope,
        outcome: CallOutcome,
    ) -> Result<Option<ResponsePayload>, Rejection> {
        match outcome {
            CallOutcome::Done(response) => Ok(Some(response)),
            CallOutcome::Bridge(call) => {
                self.start_bridge_call(vm_id, request_id, ownership.clone(), call)?;
                Ok(None)
            }
        }
    }
}

fn prompt_answer(payload: &[u8], capability: &str) -> PromptOutcome {
    let decision = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|value| value.get("decision").and_then(|d| d.as_str().map(str::to_owned)));
    match decision.as_deref() {
        Some("allow") => PromptOutcome::Allowed,
        _ => PromptOutcome::Denied(format!("EACCES: permission denied by host prompt for {capability}")),
    }
}

impl Sidecar {
    /// Checks `capability` on `resource` for a guest operation in `vm_id`. An ASK rule denies
    /// unless the VM's config opted into prompts; then the host is asked and the operation
    /// waits for [`take_prompt_outcome`](Self::take_prompt_outcome). Guest operations check
    /// their permissions inside the kernel; this door lets tests ask directly.
    #[cfg(feature = "testing")]
    pub fn check_permission(
        &mut self,
        vm_id: &str,
        capability: crate::policy::permissions::Capability,
        resource: &str,
    ) -> Result<crate::vm::PermissionCheck, Rejection> {
        let vm = self.vms.get(vm_id).ok_or_else(|| super::unknown_vm(vm_id))?;
        let prompts = vm.config().permission_prompts;
        match vm.policy().decide(capability, resource, prompts.enabled) {
            crate::policy::permissions::Decision::Allow => Ok(crate::vm::PermissionCheck::Allowed),
            crate::policy::permissions::Decision::Deny { message } => Ok(crate::vm::PermissionCheck::Denied(message)),
            crate::policy::permissions::Decision::Ask => {
                let ticket = self.send_prompt(vm_id, capability.as_str(), resource, prompts.timeout_ms)?;
                Ok(crate::vm::PermissionCheck::Prompted(ticket))
            }
        }
    }

    /// The resolved resource limits of a VM.
    pub fn vm_limits(&self, vm_id: &str) -> Option<&crate::policy::config::ResolvedLimits> {
        self.vms.get(vm_id).map(crate::vm::Vm::limits)
    }
}
