//! The pod service: the control API's socket, the pods it meshes and their
//! persisted records.

pub mod control;
pub mod pods;
pub mod records;
