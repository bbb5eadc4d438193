"""Real clients play our server: ffmpeg/ffprobe and GStreamer rtspsrc, over UDP and TCP.

Every frame the real program reassembles is compared with the source frame by its
decoded pixels; counts must equal the movie's frame count exactly.
"""

import logging
import shutil
import subprocess

import pytest

from conftest import MOVIE
from media import noise_jpeg, pixels, scene_jpeg
from RtpJpeg import find_jpeg_end
from VideoStream import VideoStream, write_mjpeg

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
GST = shutil.which("gst-launch-1.0")
need_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (tools/test.sh installs it)")
need_gst = pytest.mark.skipif(GST is None, reason="gst-launch-1.0 not installed (tools/test.sh installs it)")

FAST_FPS = 100  # the 500-frame movie in 5 s instead of 25


def split_jpegs(data):
    """Split ffmpeg's -f mjpeg output.  Its RTP/JPEG depacketizer always appends an EOI,
    so frames whose payload carried one (ours do) end in FFD9 FFD9: skip the extra one."""
    frames, pos = [], 0
    while pos < len(data):
        end = find_jpeg_end(data, pos)
        frames.append(data[pos:end])
        pos = end
        while data[pos:pos + 2] == b"\xff\xd9":
            pos += 2
    return frames


def assert_same_frames(received, source):
    assert len(received) == source.frame_count
    for index, frame in enumerate(received):
        assert pixels(frame) == pixels(source.frame(index)), f"frame {index} differs"


def receiver_reports(caplog):
    """RR log lines of our server: proof that the real client's RTCP reached and parsed."""
    return [r.getMessage() for r in caplog.records if "RR fraction lost" in r.getMessage()]


def run(cmd, timeout):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, text=True)


def ffmpeg_copy(url, transport, out, timeout=60):
    """ffmpeg's RTSP client: copy the reassembled JPEGs to a file and also decode them."""
    return run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport", transport,
                "-i", url, "-map", "0", "-c", "copy", "-f", "mjpeg", "-y", str(out),
                "-map", "0", "-f", "null", "-"], timeout)


def gst_copy(url, protocol, folder, timeout=60):
    return run([GST, "-q", "rtspsrc", f"location={url}", f"protocols={protocol}", "!", "rtpjpegdepay", "!",
                "tee", "name=t", "t.", "!", "queue", "!", "multifilesink", f"location={folder}/f%05d.jpg",
                "t.", "!", "queue", "!", "jpegdec", "!", "fakesink"], timeout)


@need_ffmpeg
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ffmpeg_receives_every_frame(start_server, tmp_path, transport, caplog):
    caplog.set_level(logging.INFO, logger="ServerWorker")
    caplog.set_level(logging.INFO, logger="Streamer")  # RTCP, timeouts, end of stream
    srv = start_server(fps=FAST_FPS)
    out = tmp_path / "got.mjpeg"
    result = ffmpeg_copy(srv.url(), transport, out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"ffmpeg reported: {result.stderr}"  # no decoder or RTCP error
    assert_same_frames(split_jpegs(out.read_bytes()), VideoStream(MOVIE, fps=FAST_FPS))
    assert not [r for r in caplog.records if "bad RTCP" in r.getMessage()]
    reports = receiver_reports(caplog)
    if transport == "udp":  # ffmpeg sends no receiver reports over interleaved TCP
        assert reports
    assert all("fraction lost 0.0%" in r for r in reports), reports


@need_gst
@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_gstreamer_receives_every_frame(start_server, tmp_path, protocol, caplog):
    caplog.set_level(logging.INFO, logger="ServerWorker")
    caplog.set_level(logging.INFO, logger="Streamer")  # RTCP, timeouts, end of stream
    srv = start_server(fps=FAST_FPS)
    result = gst_copy(srv.url(), protocol, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr and "WARN" not in result.stderr, result.stderr
    files = sorted(tmp_path.glob("f*.jpg"))
    assert_same_frames([f.read_bytes() for f in files], VideoStream(MOVIE, fps=FAST_FPS))
    assert not [r for r in caplog.records if "bad RTCP" in r.getMessage()]
    reports = receiver_reports(caplog)
    assert reports and all("fraction lost 0.0%" in r for r in reports), reports


@need_ffmpeg
def test_ffprobe_describes_the_stream(server):
    if FFPROBE is None:
        pytest.skip("ffprobe not installed")
    result = run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
                  "stream=codec_name,width,height", "-of", "default=nw=1", server.url()], 30)
    assert result.returncode == 0, result.stderr
    assert "codec_name=mjpeg" in result.stdout
    assert "width=384" in result.stdout and "height=288" in result.stdout


@pytest.fixture(scope="module")
def big_movie(tmp_path_factory):
    """1280x720 frames over 64 KB (two over 200 KB), the concatenated-JPEG format."""
    folder = tmp_path_factory.mktemp("big")
    frames = [scene_jpeg(1280, 720, index=i, quality=95) for i in range(10)]
    frames[3] = noise_jpeg(1280, 720, quality=50, seed=3)
    frames[7] = noise_jpeg(1280, 720, quality=75, seed=7)
    assert min(map(len, frames)) > 64 * 1024
    assert max(map(len, frames)) > 200 * 1024
    write_mjpeg(folder / "big.Mjpeg", frames)
    return folder


@need_ffmpeg
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ffmpeg_plays_frames_over_64k(start_server, big_movie, tmp_path, transport):
    srv = start_server(big_movie, fps=10)
    out = tmp_path / "got.mjpeg"
    result = ffmpeg_copy(srv.url("big.Mjpeg"), transport, out)
    assert result.returncode == 0, result.stderr
    assert_same_frames(split_jpegs(out.read_bytes()), VideoStream(big_movie / "big.Mjpeg"))


@need_gst
@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_gstreamer_plays_frames_over_64k(start_server, big_movie, tmp_path, protocol):
    srv = start_server(big_movie, fps=10)
    result = gst_copy(srv.url("big.Mjpeg"), protocol, tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("f*.jpg"))
    assert_same_frames([f.read_bytes() for f in files], VideoStream(big_movie / "big.Mjpeg"))
