//! The pod service: the control API's socket (control), the pods it meshes
//! (pod_service) and their persisted records.

pub mod control;
pub mod pod_service;
pub mod records;
