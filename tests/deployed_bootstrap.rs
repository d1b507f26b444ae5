//! The artifacts that deploy: the `bootstrap` of the API and the events function exactly as
//! `sam build` leaves them (`<LAMBDA_BUILD_DIR>/<Function>/bootstrap`: release builds for arm64,
//! which cargo lambda cross-compiles), started as Lambda starts them, behind the Runtime API on
//! loopback, with the stand-ins behind them. `sam local` would need Docker; on an x86_64 machine
//! Debian's qemu-user-static runs the arm64 binary instead, with the arm64 C library's dynamic
//! loader (`libc6:arm64`).
//!
//! One API event reserves an upload, the bytes go up through the presigned URL, one S3 event
//! (`ObjectCreated`) has the events function confirm the file, and one more API event reads it
//! back as available: cold start, configuration, the SDK clients, both runtime loops and both
//! faces of the product, in the binaries that deploy.
//!
//! `make test` runs `sam build` first and sets `LAMBDA_BUILD_DIR` (its `.aws-sam/build`) and
//! `QEMU_AARCH64`, installing qemu-user-static and libc6:arm64 when they are missing. Where
//! `scripts/lambda-arch.sh` fell back to x86_64 (no aarch64 Rust target), the build is x86_64 and
//! runs as it is; the header of each binary says which.

use presign_gate_test_support as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::function_process::FunctionProcess;
use support::*;

/// What installs the emulator and the arm64 dynamic loader on Debian, as `make test` does it.
const INSTALL: &str = "as root: dpkg --add-architecture arm64 && apt-get update && \
                       apt-get install -y qemu-user-static libc6:arm64 (make test does this)";

/// `e_machine` of an ELF header: what CPU the binary is for.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// The `bootstrap` that `sam build` made for `function` (the template's logical id).
fn bootstrap(function: &str) -> PathBuf {
    let dir = std::env::var_os("LAMBDA_BUILD_DIR").unwrap_or_else(|| {
        panic!(
            "LAMBDA_BUILD_DIR is not set: run the tests with `make test`, which runs `sam build` \
             and sets it to the build's folder (.aws-sam/build)"
        )
    });
    let path = Path::new(&dir).join(function).join("bootstrap");
    assert!(
        path.is_file(),
        "{} does not exist: `make sam-build` builds it",
        path.display()
    );
    path
}

/// The CPU an ELF executable is for, from its header (little-endian `e_machine` at byte 18).
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).expect("read the bootstrap");
    assert_eq!(
        bytes.get(..4),
        Some(&b"\x7fELF"[..]),
        "{} is not an ELF executable",
        path.display()
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// The command that runs `binary` here: under qemu-aarch64 when it is an arm64 build and this
/// machine is not arm64, as it is otherwise.
fn command_for(binary: &Path) -> Command {
    let machine = elf_machine(binary);
    let native = if cfg!(target_arch = "aarch64") {
        EM_AARCH64
    } else {
        EM_X86_64
    };
    if machine == native {
        eprintln!("{}: native build, run as it is", binary.display());
        return Command::new(binary);
    }
    assert_eq!(
        machine,
        EM_AARCH64,
        "{} is for ELF machine {machine}, neither arm64 nor this machine's",
        binary.display()
    );
    let qemu = std::env::var_os("QEMU_AARCH64")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "QEMU_AARCH64 is not set: run the tests with `make test`, which sets it; {INSTALL}"
            )
        });
    assert!(
        qemu.is_file(),
        "QEMU_AARCH64={} does not exist: install it, {INSTALL}",
        qemu.display()
    );
    // The interpreter the arm64 binary names (PT_INTERP); qemu-user resolves it on this root.
    assert!(
        Path::new("/lib/ld-linux-aarch64.so.1").exists(),
        "/lib/ld-linux-aarch64.so.1 (the arm64 C library) is missing: {INSTALL}"
    );
    eprintln!(
        "{}: arm64 build, run under {}",
        binary.display(),
        qemu.display()
    );
    let mut command = Command::new(qemu);
    command.arg(binary);
    command
}

/// Starts the `function`'s deployed bootstrap as Lambda would, with the settings of the template
/// and the credentials of its role, pointed at the stand-ins.
fn start(function: &str, name: &str, standins: &StandIns) -> FunctionProcess {
    let role = match function {
        "ApiFunction" => Role::Api,
        "EventsFunction" => Role::Events,
        other => panic!("no role for {other}"),
    };
    FunctionProcess::start(
        command_for(&bootstrap(function)),
        name,
        standins.deployed_settings(role),
    )
}

#[tokio::test]
async fn the_deployed_bootstraps_start_and_answer_an_api_and_an_s3_event() {
    let standins = StandIns::start().await;
    let mut api = start("ApiFunction", "presign-gate-api", &standins);
    let mut events = start("EventsFunction", "presign-gate-events", &standins);
    let caller = "arm64-caller";
    let body = b"bytes through the deployed build\n";

    let (status, reservation) = api.request(
        &HttpApiEvent::new("POST", "/uploads")
            .caller(caller)
            .json_body(
                &json!({ "filename": "a.txt", "contentType": "text/plain", "size": body.len() }),
            )
            .to_json(),
    );
    assert_eq!(status, 201, "{reservation}");
    assert_eq!(reservation["file"]["status"], "pending", "{reservation}");
    let id = file_id(&reservation);
    let put = upload(&reservation, body).await;
    assert_eq!(put.status(), 200, "{:?}", put.text().await);

    // S3's notification of that object, as the bucket sends it to the events function.
    let event = s3_event("s3/object-created.json", &format!("users/{caller}/{id}"));
    let answer = events.invoke(&serde_json::to_value(event).expect("S3 event as JSON"));
    assert_eq!(
        answer,
        Value::Null,
        "the events function reports no failure"
    );

    let (status, read) = api.request(
        &HttpApiEvent::new("GET", &format!("/files/{id}"))
            .caller(caller)
            .to_json(),
    );
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["file"]["status"], "available", "{read}");
    assert_eq!(read["file"]["size"], body.len(), "{read}");
}
