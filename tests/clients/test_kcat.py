"""kcat (Debian's build, an older librdkafka) writes a file of keyed lines
with headers and reads it back byte for byte."""

import subprocess

import pytest

from support import unique_name

# `-K:` splits each line at its first ':'; a line without one has no key.
LINES = [
    b"alpha:first value",
    b"beta:",
    b":value with an empty key",
    b"alpha:second value for alpha",
    b"gamma:a:value:with:colons",
    b"no delimiter, so no key",
    "utf8:h\u00e9llo w\u00f6rld \u2713".encode(),
    b"tab:one\ttwo",
]
# A repeated key, an empty value, and one without '=' (a null value).
HEADER_ARGS = ["-H", "trace=abc", "-H", "empty=", "-H", "novalue", "-H", "trace=def"]
HEADERS_PRINTED = b"trace=abc,empty=,novalue=NULL,trace=def"
FORMAT = "p=%p o=%o K=%K k=%k S=%S v=%s h=%h\\n"


def kcat(*args) -> bytes:
    result = subprocess.run(["kcat", *args], capture_output=True, timeout=60, check=False)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, f"kcat {' '.join(args)} exited {result.returncode}: {stderr}"
    return result.stdout


def expected_output() -> bytes:
    out = []
    for offset, line in enumerate(LINES):
        if b":" in line:
            key, value = line.split(b":", 1)
            key_length = len(key)
        else:
            key, value, key_length = b"", line, -1
        out.append(
            b"p=0 o=%d K=%d k=%s S=%d v=%s h=%s\n"
            % (offset, key_length, key, len(value), value, HEADERS_PRINTED)
        )
    return b"".join(out)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_round_trip_is_byte_exact(server, tmp_path, codec):
    topic = unique_name(f"kcat-{codec}")
    source = tmp_path / "lines.txt"
    source.write_bytes(b"\n".join(LINES) + b"\n")

    producer_args = ["-P", "-t", topic, "-K:", "-z", codec, *HEADER_ARGS, "-l", str(source)]
    kcat("-b", server.bootstrap, *producer_args)
    consumer_args = ["-C", "-t", topic, "-o", "beginning", "-e", "-f", FORMAT]
    consumed = kcat("-q", "-b", server.bootstrap, *consumer_args)

    assert consumed == expected_output()
