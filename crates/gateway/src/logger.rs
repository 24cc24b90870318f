//! The async front of the capture log: one writer thread, group commit.
//!
//! Every connection task hands its records to [`Logger::submit`] and gets a [`Receipt`] that resolves
//! once the records are on disk (`fsync`ed) — or with the error that kept them off it. The writer thread
//! takes everything queued at that moment, writes it as one batch and `fsync`s once, so a busy gateway
//! pays one `fsync` per batch rather than per message, while no message waits for a timer. Every second
//! without traffic it lets the writer sign a due checkpoint or rotate.

use nbtrail_capture::writer::{Entry, LogWriter};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Most records written in one batch.
const MAX_BATCH: usize = 4096;

type Reply = oneshot::Sender<Result<u64, String>>;

enum Job {
    Write(Vec<Entry>, Reply),
    Close(oneshot::Sender<()>),
}

/// Cheap to clone; all clones feed the same writer thread.
#[derive(Clone)]
pub struct Logger {
    tx: mpsc::Sender<Job>,
}

/// Resolves to the sequence number of the last record of a submission once it is durable.
pub type Receipt = oneshot::Receiver<Result<u64, String>>;

const STOPPED: &str = "capture log writer has stopped";

/// Waits for a receipt: the last record's sequence number, or why the records are not on disk.
pub async fn settle(receipt: Receipt) -> Result<u64, String> {
    receipt.await.unwrap_or_else(|_| Err(STOPPED.into()))
}

impl Logger {
    /// Starts the writer thread. The first segment must already have been started by the caller (so a
    /// log directory that cannot be written is reported at start-up, not on the first message).
    pub fn start(mut writer: LogWriter) -> Logger {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("capture-writer".into())
            .spawn(move || {
                let mut closing = None;
                loop {
                    let first = match rx.recv_timeout(Duration::from_secs(1)) {
                        Ok(j) => j,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if let Err(e) = writer.append(&[]) {
                                tracing::error!("capture log: {e}");
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    let mut entries: Vec<Entry> = Vec::new();
                    let mut replies: Vec<(Reply, usize)> = Vec::new();
                    let mut job = Some(first);
                    while let Some(j) = job.take() {
                        match j {
                            Job::Write(e, r) => {
                                entries.extend(e);
                                replies.push((r, entries.len()));
                            }
                            Job::Close(done) => {
                                closing = Some(done);
                                break;
                            }
                        }
                        if entries.len() < MAX_BATCH {
                            job = rx.try_recv().ok();
                        }
                    }
                    if !entries.is_empty() {
                        match writer.append(&entries) {
                            Ok(seqs) => {
                                for (r, end) in replies {
                                    let _ = r.send(Ok(seqs
                                        .get(end.wrapping_sub(1))
                                        .copied()
                                        .unwrap_or(0)));
                                }
                            }
                            Err(e) => {
                                tracing::error!(
                                    "capture log write failed, refusing to forward: {e}"
                                );
                                let msg = e.to_string();
                                for (r, _) in replies {
                                    let _ = r.send(Err(msg.clone()));
                                }
                            }
                        }
                    }
                    if let Some(done) = closing.take() {
                        if let Err(e) = writer.close() {
                            tracing::error!("closing capture log: {e}");
                        }
                        let _ = done.send(());
                        break;
                    }
                }
            })
            .expect("spawn capture writer thread");
        Logger { tx }
    }

    /// Queues records; the receipt resolves when they are durable.
    pub fn submit(&self, entries: Vec<Entry>) -> Receipt {
        let (tx, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Job::Write(_, reply))) = self.tx.send(Job::Write(entries, tx)) {
            let _ = reply.send(Err(STOPPED.into()));
        }
        rx
    }

    /// Writes records and waits until they are durable.
    pub async fn write(&self, entries: Vec<Entry>) -> Result<u64, String> {
        settle(self.submit(entries)).await
    }

    /// Closes the log (final checkpoint, `segment_end`) after everything queued before.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
