//! Typed identifiers shared by several rooms. They live here, below every room, so that a room
//! can name another's objects without importing it.

/// A transport link, allocated by [`Sidecar::open_stream`](crate::Sidecar::open_stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64);

/// A permission prompt in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromptTicket(pub u64);
