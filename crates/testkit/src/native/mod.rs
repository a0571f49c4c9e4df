//! The native backend: database servers run as child processes of this process, from the
//! server binaries installed on the machine.

pub(crate) mod postgres;
pub(crate) mod process;
