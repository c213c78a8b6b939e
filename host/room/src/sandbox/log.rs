//! Host side of `cleanroom:workload/log`: a bounded log. Past the run's log cap, messages
//! are dropped and the log is marked truncated (flooding is not an error, it is capped).

use super::bindings::log::{Host, Level};
use super::limits::MAX_LOG_MESSAGE_BYTES;
use super::state::RunState;

impl Host for RunState {
    fn write(&mut self, lvl: Level, message: String) -> wasmtime::Result<()> {
        self.check_live()?;
        let tag = match lvl {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let mut msg = message.as_str();
        if msg.len() > MAX_LOG_MESSAGE_BYTES {
            let mut end = MAX_LOG_MESSAGE_BYTES;
            while !msg.is_char_boundary(end) {
                end -= 1;
            }
            msg = &msg[..end];
        }
        let line_len = tag.len() + msg.len() + 3;
        if self.log_truncated || self.log.len() + line_len > self.limits.log_bytes {
            self.log_truncated = true;
            return Ok(());
        }
        self.log.push('[');
        self.log.push_str(tag);
        self.log.push_str("] ");
        self.log.push_str(msg);
        self.log.push('\n');
        Ok(())
    }
}
