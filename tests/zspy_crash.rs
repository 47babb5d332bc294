//! Crash safety of the `.zspy` writer, with real processes: a writer killed with SIGKILL at
//! random moments never leaves a chunk file that fails to decode, a resume completes the
//! store to the same bytes as an uninterrupted write, and a reader polling the store during
//! a write never sees a torn chunk.
//!
//! The writer runs in a child process: this test binary re-invoked with `LAZYSPY_CRASH_CHILD`
//! set (see `crash_child_process`). Set `LAZYSPY_TEST_SEED` to replay a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lazyspy::io::atomic::INCOMPLETE_MARKER;
use lazyspy::signal::{Signal, ZarrStore, ZspyArraySource, ZspyWriteOptions, write_zspy};
use lazyspy::{ChunkSource, ExecConfig, LazyArray};
use ndarray::ArrayD;

const CHILD_ENV: &str = "LAZYSPY_CRASH_CHILD";
const PATH_ENV: &str = "LAZYSPY_CRASH_PATH";
const SHAPE: [usize; 3] = [48, 64, 64];
const CHUNKS: [usize; 3] = [1, 64, 64];
const DATA_KEY: &str = "Experiments/crash/data";

/// The job: a deterministic float32 stack written with default settings.
fn signal() -> Signal {
    let data = LazyArray::from_fn(&SHAPE, &CHUNKS, |r| {
        let shape = r.shape();
        let mut a = ArrayD::<f32>::zeros(shape.clone());
        for (i, v) in a.iter_mut().enumerate() {
            let z = r.start[0] + i / (shape[1] * shape[2]);
            *v = ((i as f32) * 0.37 + z as f32 * 11.0).sin() * 100.0 + z as f32;
        }
        Ok(a)
    })
    .unwrap();
    Signal::from_lazy(data.into_dyn(), 2, "crash")
}

fn write(path: &Path, resume: bool) -> lazyspy::signal::ZspyWriteReport {
    let opts = ZspyWriteOptions {
        resume,
        ..ZspyWriteOptions::default()
    };
    write_zspy(
        path,
        &signal(),
        &opts,
        &ExecConfig::default().with_threads(2),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Not a test of its own: the body of the child process.
#[test]
fn crash_child_process() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = PathBuf::from(std::env::var(PATH_ENV).unwrap());
    write(&path, mode == "resume");
}

fn spawn(path: &Path, mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .env(PATH_ENV, path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("LAZYSPY_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("zspy_crash: LAZYSPY_TEST_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let key = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(key, bytes);
            }
        }
    }
    out
}

/// Decodes every chunk file present; returns how many there were.
fn decode_present_chunks(path: &Path) -> Result<usize, String> {
    if !path.join(DATA_KEY).join(".zarray").exists() {
        return Ok(0);
    }
    // Raw access: the store is unfinished (marked incomplete) while it is being written.
    let store = ZarrStore::open(path).map_err(|e| e.to_string())?;
    let source = ZspyArraySource::open_in(&store, DATA_KEY).map_err(|e| e.to_string())?;
    let mut n = 0;
    for z in 0..SHAPE[0] {
        if path.join(format!("{DATA_KEY}/{z}/0/0")).exists() {
            source
                .read_chunk(&[z, 0, 0])
                .map_err(|e| format!("chunk {z}: {e}"))?;
            n += 1;
        }
    }
    Ok(n)
}

#[test]
fn a_writer_killed_at_random_moments_resumes_to_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.zspy");
    let started = Instant::now();
    write(&clean, false);
    let clean_time = started.elapsed();
    let expected = files(&clean);
    let mut rng = Rng::new();
    let mut partial_states = 0;
    for round in 0..8 {
        let path = dir.path().join(format!("killed{round}.zspy"));
        // Kill the writer once or several times, then let a resume finish the job.
        let kills = 1 + rng.below(3);
        for _ in 0..kills {
            let mode = if path.exists() { "resume" } else { "fresh" };
            let mut child = spawn(&path, mode);
            // Process start-up plus up to about one clean write.
            let wait = Duration::from_millis(5 + rng.below(40 + clean_time.as_millis() as u64 * 2));
            std::thread::sleep(wait);
            child.kill().unwrap();
            child.wait().unwrap();
            let n = decode_present_chunks(&path).unwrap_or_else(|e| {
                panic!("round {round}: a chunk does not decode after SIGKILL: {e}")
            });
            if n > 0 && n < SHAPE[0] {
                partial_states += 1;
            }
            if path.join(INCOMPLETE_MARKER).exists() {
                assert!(
                    !path.join(".zgroup").exists(),
                    "an unfinished store must not look like a Zarr group"
                );
            }
        }
        if path.exists() {
            let out = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "crash_child_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, "resume")
                .env(PATH_ENV, &path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "round {round}: resume failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            write(&path, false);
        }
        let got = files(&path);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "round {round}"
        );
        assert!(
            got == expected,
            "round {round}: bytes differ from a clean write"
        );
    }
    eprintln!("zspy_crash: {partial_states} kills left a partially written store");
}

#[test]
fn a_polling_reader_never_sees_a_torn_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("polled.zspy");
    let mut child = spawn(&path, "fresh");
    let mut decoded_max = 0;
    let mut polls = 0;
    loop {
        let finished = child.try_wait().unwrap().is_some();
        let n = decode_present_chunks(&path)
            .unwrap_or_else(|e| panic!("poll {polls}: a reader saw a bad chunk: {e}"));
        decoded_max = decoded_max.max(n);
        polls += 1;
        if finished {
            break;
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(decode_present_chunks(&path).unwrap(), SHAPE[0]);
    assert!(polls > 1, "the reader polled during the write");
    eprintln!("zspy_crash: {polls} polls, up to {decoded_max} chunks decoded while writing");
}
