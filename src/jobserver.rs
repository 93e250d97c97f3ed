//! One job budget for a whole run: a GNU make jobserver.
//!
//! A pipe holds `jobs` tokens. Every command the airlock starts first takes
//! one (the child's implicit job slot, in make's terms) and puts it back
//! when it ends; every `make` it runs gets `MAKEFLAGS=-jN
//! --jobserver-auth=R,W` and takes further tokens from the same pipe for
//! its parallel jobs. The run itself keeps no slot: one it kept for itself
//! could not reach a make already running, which would then stay at one
//! job after the command beside it ended. So packages and
//! stages built side by side, and every make inside them, run at most `jobs`
//! jobs in all (`-j2` means two). Scripts should not pass `-j` to make:
//! an explicit `-jN` makes a jobserver of its own and leaves the budget.
//!
//! GNU make 4.3 (Debian 12's) speaks the pipe form of the protocol: the
//! descriptors are inherited at the numbers MAKEFLAGS names.

use crate::interrupt::Interrupt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

#[derive(Debug)]
pub struct Jobserver {
    read: OwnedFd,
    write: OwnedFd,
    /// Our own non-blocking way into the pipe's read end (a separate open
    /// file description: make wants the inherited one blocking).
    ours: std::fs::File,
    jobs: usize,
}

/// A held job slot (a token taken from the pipe), given back when dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    server: &'a Jobserver,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let _ = rustix::io::write(&self.server.write, b"+");
    }
}

impl Jobserver {
    /// A budget of `jobs` (at least 1).
    pub fn new(jobs: usize) -> io::Result<Jobserver> {
        let jobs = jobs.max(1);
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let tokens = vec![b'+'; jobs];
        (&std::fs::File::from(write.try_clone()?)).write_all(&tokens)?;
        let ours = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(format!("/proc/self/fd/{}", read.as_raw_fd()))?;
        Ok(Jobserver {
            read,
            write,
            ours,
            jobs,
        })
    }

    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// What `make` finds in its environment.
    pub fn makeflags(&self) -> String {
        format!(
            "-j{} --jobserver-auth={},{}",
            self.jobs,
            self.read.as_raw_fd(),
            self.write.as_raw_fd()
        )
    }

    /// The two descriptors a child must inherit.
    pub fn fds(&self) -> [RawFd; 2] {
        [self.read.as_raw_fd(), self.write.as_raw_fd()]
    }

    /// Take a slot: a token from the pipe (waiting for one, polling
    /// `interrupt`).
    pub fn acquire(&self, interrupt: &Interrupt) -> io::Result<Slot<'_>> {
        loop {
            let mut b = [0u8; 1];
            match (&self.ours).read(&mut b) {
                Ok(1) => return Ok(Slot { server: self }),
                Ok(_) => return Err(io::Error::other("the jobserver's pipe closed")),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if interrupt.is_set() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let js = Jobserver::new(2).unwrap();
        let i = Interrupt::new();
        let a = js.acquire(&i).unwrap();
        let b = js.acquire(&i).unwrap();
        // A third waits: with the flag set it gives up instead.
        let stop = Interrupt::new();
        stop.set();
        assert!(js.acquire(&stop).is_err());
        drop(a);
        let c = js.acquire(&stop).unwrap();
        drop(b);
        drop(c);
        assert!(js.makeflags().starts_with("-j2 --jobserver-auth="));
    }

    /// A make that is running when the command beside it ends gets that
    /// command's slot: its token goes back into the pipe make reads.
    #[test]
    fn a_slot_given_back_reaches_a_running_make() {
        let js = Jobserver::new(2).unwrap();
        let i = Interrupt::new();
        let other = js.acquire(&i).unwrap();
        let _make = js.acquire(&i).unwrap();
        // The make, reading the pipe as make does, finds nothing yet...
        let pipe = || {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(format!("/proc/self/fd/{}", js.fds()[0]))
                .unwrap()
        };
        let mut b = [0u8; 1];
        assert!((&pipe()).read(&mut b).is_err());
        // ...and the other command's token once that ends.
        drop(other);
        assert_eq!((&pipe()).read(&mut b).unwrap(), 1);
        let _ = rustix::io::write(&js.write, b"+");
    }
}
