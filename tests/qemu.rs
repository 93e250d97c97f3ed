//! QEMU console tests.
