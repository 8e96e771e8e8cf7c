"""The ``wasm-sandbox`` command line: run, verify, log, checkpoint, proof, keys, decrypt, mcp.

Every command takes ``--home DIR`` (or ``$WASM_SANDBOX_HOME``) and most take ``--json``.
Exit status: 0 done, 1 a verification or decryption failed, 2 bad usage or input, 141 the
reader of the output went away (``wasm-sandbox log | head -1``), as for a tool killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import FileError, SandboxError, UsageProblem, describe
from .options import add_run_options

EPILOG = {
    "run": """examples:
  wasm-sandbox run fact.wat --invoke fact 10
  wasm-sandbox run hello.c --json
  wasm-sandbox run prog.wasm --fuel 1e8 --memory 16MiB --timeout 2s --dir data:/data:ro
  wasm-sandbox run a.wasm b.wasm c.wasm --json     # a batch: one JSON array""",
    "verify": """examples:
  wasm-sandbox verify 3f2a...        # one record: form, ciphertexts, inclusion, commitments
  wasm-sandbox verify last --replay  # ... and re-run it deterministically
  wasm-sandbox verify --all --json   # the whole log (what was logged since the last one in full)
  wasm-sandbox verify --all --full   # the whole log, every record in full""",
    "log": "example:\n  wasm-sandbox log -n 20 --json",
    "checkpoint": "example:\n  wasm-sandbox checkpoint > checkpoint.txt",
    "proof": "example:\n  wasm-sandbox proof last > receipt.txt  # check: docs/verify_receipt.py",
    "keys": """examples:
  wasm-sandbox keys --json
  wasm-sandbox keys --export-public me.pem
  wasm-sandbox keys --import-recipient teacher.pem   # seal future runs to someone else
  wasm-sandbox keys --protect    # encrypt the private keys ($WASM_SANDBOX_PASSPHRASE or asked)""",
    "sign": """examples:
  wasm-sandbox sign plugin.wasm -o plugin.signed.wasm --json
  wasm-sandbox keys --json        # signer_verifier_key: what --require-signed-by takes
  wasm-sandbox run plugin.signed.wasm --require-signed-by VKEY""",
    "decrypt": "example:\n  wasm-sandbox decrypt last --json",
    "course": """examples:
  wasm-sandbox course                       # JupyterLab on the course, chapter 1 open
  wasm-sandbox course --dir my-course       # on a copy of the notebooks in my-course/
  wasm-sandbox course --no-browser --port 8899""",
}


#: The exit status when the output's reader has gone, as for a process killed by SIGPIPE.
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wasm-sandbox`` console script."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "course":  # the course passes them on to jupyter lab
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "course":
        args.lab_args = [*unknown, *args.lab_args]
    try:
        code = _dispatch(args)
        if sys.stdout is not None:  # None when started with stdout closed
            sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader (head, less) closed the pipe: stop without a word
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except SandboxError as exc:
        print(f"wasm-sandbox: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # main's: the reader closed the pipe
    except OSError as exc:  # a file the command touched: its name and the system's reason
        print(f"wasm-sandbox: {describe(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wasm-sandbox: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wasm-sandbox", description="Run WebAssembly under hard limits; seal and log it."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, build, handler, text in (
        ("run", _run_options, cmd_run, "run .wat, .wasm, .c or .py files under limits"),
        ("verify", _verify_options, cmd_verify, "verify a record, or the whole log"),
        ("log", _log_options, cmd_log, "list records, newest first"),
        ("checkpoint", lambda p: None, cmd_checkpoint, "print the latest signed checkpoint"),
        ("proof", _proof_options, cmd_proof, "print an offline-verifiable receipt"),
        ("keys", _keys_options, cmd_keys, "show, export or import keys"),
        ("sign", _sign_options, cmd_sign, "sign a module or component with this home's key"),
        ("decrypt", _decrypt_options, cmd_decrypt, "open a record with the private key"),
        ("course", _course_options, cmd_course, "open the tutorial notebooks in JupyterLab"),
    ):
        sub = commands.add_parser(
            name,
            help=text,
            description=text,
            epilog=EPILOG[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        build(sub)
        sub.add_argument("--home", help="keys and ledger directory ($WASM_SANDBOX_HOME)")
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=handler)
    from .witness_cli import add_witness_command

    add_witness_command(commands)
    from .receipts_cli import add_verify_notebook_command

    add_verify_notebook_command(commands)
    from .mcp_cli import add_mcp_command

    add_mcp_command(commands)
    return parser


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help=".wat, .wasm, .c or .py")
    add_run_options(p)
    p.add_argument(
        "--stdin-limit",
        metavar="SIZE",
        help="most bytes of stdin accepted (default 64MiB); more is refused before the run",
    )
    p.add_argument("--recipient", metavar="PEM", help="seal this run to another P-256 public key")


def _verify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="record id, 'last' or '#INDEX'")
    p.add_argument("--all", action="store_true", help="verify the whole log")
    p.add_argument("--replay", action="store_true", help="also re-run deterministically")
    p.add_argument(
        "--full",
        action="store_true",
        help="with --all: check every record in full, not only those logged since the last "
        "clean audit (docs/home.md)",
    )
    p.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="VKEY",
        help="with --all: require a "
        "valid cosignature by this witness on the latest checkpoint (repeatable)",
    )


def _log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--limit", type=int, default=20, help="how many records (default 20)")


def _proof_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="record id, 'last' or '#INDEX'")


def _keys_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--export-public", metavar="FILE", help="write the recipient public key")
    p.add_argument(
        "--import-recipient", metavar="FILE", help="seal future runs to this P-256 public key (PEM)"
    )
    p.add_argument(
        "--protect",
        action="store_true",
        help="encrypt the private keys with a passphrase ($WASM_SANDBOX_PASSPHRASE, else asked)",
    )


def _sign_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help=".wasm module or component (or .wat)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the signed binary")


def _decrypt_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="record id, 'last' or '#INDEX'")


def _course_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, help="run the course from a copy in this folder")
    p.add_argument("lab_args", nargs=argparse.REMAINDER, help="passed on to jupyter lab")


def _sandbox(args: argparse.Namespace) -> Any:
    from .sandbox import Sandbox

    return Sandbox(home=args.home)


def cmd_run(args: argparse.Namespace) -> int:
    options = _options_of(args)
    status = _status_line  # on stderr: never in the way of --json
    with _sandbox(args) as sb:
        if len(args.files) > 1:  # a batch: in parallel, a broken file is an error row
            files = [Path(f) for f in args.files]
            runs = list(sb.map_programs(files, options, progress=not args.json))
        else:
            runs = [sb.run(Path(args.files[0]), options, status=status)]
    if args.json:
        _print_json(runs[0].to_json() if len(runs) == 1 else [r.to_json() for r in runs])
    elif len(runs) > 1 or runs[0].error is None:
        for ex in runs:
            _print_run(ex)
    if len(runs) == 1 and runs[0].error is not None:  # logged, but it could not start
        print(f"wasm-sandbox: {runs[0].error}", file=sys.stderr)
        return 2
    return 0


def _options_of(args: argparse.Namespace) -> Any:
    """The `RunOptions` of ``wasm-sandbox run``'s command line."""
    from .keys import KeyStore
    from .limits import Grants, Limits
    from .run_options import RunOptions

    limits = Limits.parse(
        fuel=args.fuel,
        memory=args.memory,
        timeout=args.timeout,
        output=args.output,
        dir_quota=args.dir_quota,
        max_stdin=args.stdin_limit,
    )
    stdin = _read_stdin(limits) if args.stdin == "-" else args.stdin
    grants = Grants.parse(
        dirs=args.dirs,
        env=args.env,
        argv=args.argv,
        stdin=stdin,
        deterministic=args.deterministic,
        kv=args.kv,
        kv_quota=args.kv_quota,
        host_log=args.host_log,
    )
    recipient = None
    if args.recipient is not None:  # an empty file is a bad key, not "no recipient"
        recipient = KeyStore.load_public_pem(_read(args.recipient, "--recipient"))
    from .wave import Wave

    invoke, call_args = (args.invoke[0], args.invoke[1:]) if args.invoke else (None, [])
    return RunOptions(
        invoke=invoke,
        args=tuple(Wave(a) for a in call_args),  # a component reads them as WAVE
        limits=limits,
        grants=grants,
        lang=args.lang,
        recipient=recipient,
        isolation=args.isolation,
        require_signed_by=tuple(args.require_signed_by),
        trust=args.trust,
    )


def _read_stdin(limits: Any) -> bytes:
    """Standard input, read up to one byte past the limit (never all of a huge stream)."""
    data = sys.stdin.buffer.read(limits.max_stdin + 1)
    limits.check_stdin(data)
    return bytes(data)


def cmd_verify(args: argparse.Namespace) -> int:
    with _sandbox(args) as sb:
        if args.all:
            report = sb.verify_log(full=args.full)
            mark = sb.high_water.read()
            out = {
                "verified": report.ok,
                "tree_size": report.tree_size,
                "first_bad": report.first_bad,
                "problems": list(report.problems),
                "high_water": None if mark is None else {"size": mark[0], "root": mark[1].hex()},
                "incremental": report.verified_from > 0,
                "verified_from": report.verified_from,
            }
            ok = report.ok
            if args.witness:
                from .witness_cli import verify_witnesses

                out["witnesses"] = verify_witnesses(sb.ledger, args.witness)
                ok = out["verified"] = ok and all(w["cosigned"] for w in out["witnesses"])
        elif args.id:
            result = sb.verify(sb.resolve(args.id), replay=args.replay)
            out, ok = result.to_json(), result.verified
        else:
            raise UsageProblem("verify needs a record id (or 'last'), or --all")
    if args.json:
        _print_json(out)
    else:
        _print_verification(out)
    return 0 if ok else 1


def cmd_log(args: argparse.Namespace) -> int:
    with _sandbox(args) as sb:
        rows = sb.log(limit=args.limit)
    if args.json:
        _print_json(rows)
        return 0
    for row in rows:
        out = row["outcome"]
        print(
            f"#{row['leaf_index']:<5} {row['id'][:12]}  {out['status']:<12} "
            f"fuel {out['fuel_used']:<12} {out['duration_us'] / 1000:8.2f} ms"
        )
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    with _sandbox(args) as sb:
        note = sb.ledger.latest_checkpoint().note
    if args.json:
        _print_json({"checkpoint": note})
    else:
        sys.stdout.write(note)
    return 0


def cmd_proof(args: argparse.Namespace) -> int:
    with _sandbox(args) as sb:
        receipt = sb.ledger.receipt(sb.resolve(args.id))
        verifier = sb.ledger.verifier_key
    if args.json:
        _print_json({"receipt": receipt, "log_verifier_key": verifier})
    else:
        sys.stdout.write(receipt)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from .keys import PASSPHRASE_ENV, ask_passphrase

    with _sandbox(args) as sb:
        if args.protect:
            passphrase = ask_passphrase("new passphrase: ", confirm=True)
            if passphrase is None:
                raise UsageProblem(f"--protect: set ${PASSPHRASE_ENV} or run on a terminal")
            sb.keys.protect(passphrase)
        if args.import_recipient:
            sb.keys.import_recipient(_read(args.import_recipient, "--import-recipient"))
        if args.export_public:
            _write(args.export_public, sb.keys.public_pem(), "--export-public")
        out = {
            "recipient_public_key_pem": sb.keys.public_pem(),
            "recipient_key_id": sb.keys.recipient_key_id,
            "has_private_key": sb.keys.has_private_key,
            "log_origin": sb.origin,
            "log_verifier_key": sb.ledger.verifier_key,
            "signer_verifier_key": sb.keys.signer_verifier_key,
            "protected": sb.keys.protected,
        }
    if args.json:
        _print_json(out)
    else:
        print(f"recipient key id  {out['recipient_key_id']}")
        print(f"private keys      {'passphrase-protected' if out['protected'] else 'unencrypted'}")
        print(f"log origin        {out['log_origin']}")
        print(f"log verifier key  {out['log_verifier_key']}")
        print(f"module signer key {out['signer_verifier_key']}")
        print(out["recipient_public_key_pem"], end="")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign FILE as a whole (the tool-conventions ``signature`` section, as ``wasmsign2``)."""
    from . import signing

    with _sandbox(args) as sb:
        program = sb.load(Path(args.file))
        signed = signing.sign(program.wasm, sb.keys.module_signing_key())
        signer = sb.keys.signer_verifier_key
    try:
        Path(args.output).expanduser().write_bytes(signed)
    except OSError as exc:
        raise FileError(f"-o: cannot write {args.output}: {exc.strerror}") from None
    out = {
        "output": args.output,
        "size": len(signed),
        "sha256": hashlib.sha256(signed).hexdigest(),
        "signer_verifier_key": signer,
    }
    if args.json:
        _print_json(out)
    else:
        print(f"signed {args.file} -> {args.output} ({len(signed)} B)")
        print(f"signer {signer}")
    return 0


def cmd_decrypt(args: argparse.Namespace) -> int:
    from .errors import EnvelopeError

    with _sandbox(args) as sb:
        record_id = sb.resolve(args.id)
        try:
            opened = sb.decrypt(record_id)
        except EnvelopeError as exc:
            _print_json(
                {"id": record_id, "commitments_ok": False, "error": str(exc)}
            ) if args.json else print(f"wasm-sandbox: {exc}", file=sys.stderr)
            return 1
    kind, source = opened.shown_source()
    out = {
        "id": record_id,
        "program": base64.b64encode(opened.program).decode(),
        "source": source,
        "source_kind": kind,
        "input": opened.input,
        "stdin": base64.b64encode(opened.stdin).decode(),
        "result": opened.result,
        "commitments_ok": True,
    }
    if args.json:
        _print_json(out)
        return 0
    print(json.dumps({k: v for k, v in out.items() if k not in ("program", "source")}, indent=2))
    if source is not None:
        print(f"--- source ({kind})")
        print(source, end="" if source.endswith("\n") else "\n")
    return 0


def cmd_course(args: argparse.Namespace) -> int:
    from . import course

    if args.home:
        os.environ["WASM_SANDBOX_HOME"] = args.home
    try:
        course.launch(args.dir, args.lab_args)
    except OSError as exc:
        raise FileError(f"cannot start the course: {describe(exc)}") from None
    return 0


def _read(path: str, option: str) -> bytes:
    """The bytes of a file named on the command line; a `SandboxError` naming it if unreadable."""
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise FileError(f"{option}: cannot read {path}: {exc.strerror}") from None


def _write(path: str, text: str, option: str) -> None:
    """Write a file named on the command line; a `SandboxError` naming it if that fails."""
    try:
        Path(path).expanduser().write_text(text)
    except OSError as exc:
        raise FileError(f"{option}: cannot write {path}: {exc.strerror}") from None


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=None, sort_keys=True))


def _status_line(message: str) -> None:
    print(f"wasm-sandbox: {message}", file=sys.stderr, flush=True)


#: Terminal control characters a guest could use to rewrite what the user reads (ANSI escape
#: sequences, carriage returns, backspaces, C1 controls); newlines and tabs pass.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escaped(text: str) -> str:
    """``text`` with terminal control characters shown as ``\\xNN`` (human output only)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _print_run(ex: Any) -> None:
    o = ex.outcome
    facts = {"ok": "", "exit": f" code {o.exit_code}", "trap": f" {o.trap}"}
    message = f": {_escaped(o.message)}" if o.message else ""
    print(f"{o.status}{facts.get(o.status, '')}{message}")
    if o.returns:
        print("returns", " ".join(o.shown_returns()))
    for name, text in (("stdout", o.stdout), ("stderr", o.stderr), ("host log", o.host_log_text())):
        if text:
            print(f"--- {name}" + (" (cut at the output limit)" if o.output_truncated else ""))
            print(_escaped(text), end="" if text.endswith("\n") else "\n")
    at_least = ">=" if o.fuel_lower_bound else ""
    print(
        f"fuel {at_least}{o.fuel_used}/{o.fuel_limit}  memory {o.memory_bytes}/{o.memory_limit} B  "
        f"{o.duration_ms:.2f} ms"
    )
    print(f"record {ex.id}  leaf #{ex.leaf_index} of {ex.tree_size}  commitment {ex.commitment}")


def _print_verification(out: dict[str, Any]) -> None:
    verdict = "VERIFIED" if out["verified"] else "NOT VERIFIED"
    print(verdict, out.get("id", f"log of {out['tree_size']} records"))
    for name, result in out.get("checks", {}).items():
        print(f"  {name:<22} {result}")
    if out.get("first_bad") is not None:
        print(f"  first bad entry: {out['first_bad']}")
    for problem in out.get("problems", [])[:10]:
        print(f"  {problem}")
    if out.get("high_water"):
        print(f"  high-water mark: {out['high_water']['size']} records (docs/home.md)")
    if out.get("incremental"):
        print(
            f"  records from #{out['verified_from']} checked in full; the {out['verified_from']} "
            "before, unchanged since the last audit (--full checks them again)"
        )
    for w in out.get("witnesses", []):
        print(f"  witness {w['verifier_key'].split('+')[0]}: {w['problem'] or 'cosigned'}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
