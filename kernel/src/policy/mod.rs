//! What the host configures: the CreateVm/ConfigureVm JSON shapes ([`config`]) and the permission
//! policy every guest operation is checked against ([`permissions`]).

pub mod config;
pub mod permissions;
