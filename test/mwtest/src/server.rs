//! Echo server: reads until EOF, replies with its name, the connection's
//! addresses and everything it received.

use crate::net;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub fn run(listen: SocketAddr, name: &str) -> io::Result<()> {
    let listener = net::listen(listen)?;
    println!("server {name}: listening on {}", listener.local_addr()?);
    let who = format!("server {name}");
    let (label, name) = (who.clone(), name.to_string());
    net::serve_each(listener, &label, move |stream| {
        if let Err(e) = serve(stream, &name) {
            eprintln!("{who}: connection: {e}");
        }
    });
    Ok(())
}

fn serve(mut stream: TcpStream, name: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let local = stream.local_addr()?;
    let peer = stream.peer_addr()?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received)?;
    let mut reply = format!("server={name} local={local} peer={peer}\n").into_bytes();
    reply.extend_from_slice(&received);
    stream.write_all(&reply)?;
    Ok(())
}
