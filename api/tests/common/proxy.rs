//! A TCP proxy between a process under test and its server, for outages without touching the
//! server (which other tests share): `cut` closes every connection through it and stops
//! listening, so new connections are refused as by a server that is down; `restore` listens
//! again on the same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    accepting: Option<JoinHandle<()>>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let mut proxy = Proxy {
            addr: listener.local_addr().expect("the proxy's address"),
            upstream,
            accepting: None,
            links: Arc::default(),
        };
        proxy.accepting = Some(proxy.accept(listener));
        proxy
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn accept(&self, listener: TcpListener) -> JoinHandle<()> {
        let upstream = self.upstream;
        let links = self.links.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let link = tokio::spawn(async move {
                    // An upstream that does not answer: the client sees its connection close.
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                // No await between spawning and recording the link, so `cut`, which stops
                // this task first, finds every link there is.
                let mut links = links.lock().unwrap();
                links.retain(|l| !l.is_finished());
                links.push(link);
            }
        })
    }

    /// Closes every connection and refuses new ones until `restore`. Returns once the
    /// listener and every connection's sockets are closed.
    pub async fn cut(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
            let _ = accepting.await;
        }
        let links = std::mem::take(&mut *self.links.lock().unwrap());
        for link in links {
            link.abort();
            let _ = link.await;
        }
    }

    /// Listens again on the same address.
    pub async fn restore(&mut self) {
        assert!(self.accepting.is_none(), "the proxy is not cut");
        let socket = TcpSocket::new_v4().expect("a socket");
        // The cut connections linger in TIME_WAIT on this port.
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(self.addr).expect("bind the proxy's port again");
        self.accepting = Some(self.accept(socket.listen(128).expect("listen")));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
        }
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}
