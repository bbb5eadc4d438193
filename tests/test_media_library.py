"""MediaLibrary.Movie: what each kind of session gets for each frame, converted ahead of it."""

import logging
import mmap
import time

import pytest

import media
from rtsp_tools import wait_for
from MediaLibrary import FrameUnavailable, MAX_DATAGRAM_PAYLOAD, MediaLibrary, Movie
from RtpJpeg import JpegDepacketizer, parse_jpeg, parse_payload
from RtpPacket import RtpPacket


def movie_of(tmp_path, frames, name="m.Mjpeg", **options):
    path = tmp_path / name
    media.write_movie(path, frames)
    return Movie(name, path, 20.0, 1400, **options)


def rebuilt(train):
    """The JPEG an RFC 2435 receiver rebuilds from a train's packets."""
    depacketizer = JpegDepacketizer()
    packets = [RtpPacket.parse(bytes(p)) for p in train.packets(train.stamp(1, 1000, 7))]
    out = [depacketizer.push(p.payload, p.rtp_timestamp, p.marker) for p in packets]
    assert out[-1] is not None
    return out[-1]




def test_444_movie_rtp_sessions_get_conversions_lab_sessions_the_file(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="MediaLibrary")
    frames = media.uncarriable_frames("444", 12)
    movie = movie_of(tmp_path, frames)
    for index, source in enumerate(frames):
        train = movie.train(index, lab=False, reader="s1")
        assert parse_payload(bytes(train.packets(train.stamp(1, 1, 1))[0][12:])).jpeg_type == 1
        assert media.psnr(source, rebuilt(train), "YCbCr")["Y"] >= 35
        lab = movie.train(index, lab=True, reader="s2")
        assert lab.count == 1 and bytes(lab.packets(lab.stamp(1, 1, 1))[0][12:]) == source
    said = [r for r in caplog.records if "cannot be sent as RFC 2435" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert "luma sampling 1x1" in said[0].getMessage() and "lab-dialect clients get" in said[0].getMessage()
    assert movie.converted_frames == 12
    movie.close()


def test_converter_runs_ahead_of_a_session(tmp_path):
    frames = media.uncarriable_frames("optimized", 40)
    movie = movie_of(tmp_path, frames)
    # opening the movie already started converting from frame 0; a PLAY at frame 10 prepares 10
    movie.prepare(10, False, "s1")
    wait_for(lambda: all((i, False) in movie._store for i in range(40)), 20, "40 frames converted")
    before = movie.inline_conversions
    for index in range(10, 40):
        assert parse_jpeg(movie.jpeg(index)).jpeg_type == 1
    assert movie.inline_conversions == before  # every frame was ready when asked for
    movie.close()
    assert movie._converter is None or not movie._converter.is_alive()


def test_carriable_movie_is_sent_as_it_is_without_a_converter(tmp_path):
    frames = media.movie_frames(5)
    movie = movie_of(tmp_path, frames)
    movie.prepare(0, False, "s1")
    for index, source in enumerate(frames):
        assert movie.jpeg(index) == source and movie.jpeg(index, lab=True) == source
    assert movie._converter is None and movie.converted_frames == 0


def test_large_file_is_mapped_not_read(tmp_path, monkeypatch):
    import VideoStream
    frames = media.movie_frames(3)
    monkeypatch.setattr(VideoStream, "MMAP_THRESHOLD", 1000)
    movie = movie_of(tmp_path, frames)
    assert isinstance(movie.stream._data, mmap.mmap)  # page cache, not a heap copy of the file
    assert [movie.jpeg(i) for i in range(3)] == frames
    movie.stream.close()


def test_lab_frames_over_the_limit_are_reencoded_smaller(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="MediaLibrary")
    frames = [media.scene_jpeg(1280, 720, index=i, quality=95) for i in range(4)]
    frames.append(media.scene_jpeg(320, 240, index=4))
    assert min(map(len, frames[:4])) > 20000
    movie = movie_of(tmp_path, frames, lab_max_frame=20000)
    for index, source in enumerate(frames):
        jpeg = movie.jpeg(index, lab=True)
        assert len(jpeg) <= 20000
        if index < 4:
            assert media.decode(jpeg).size == (1280, 720)
        else:
            assert jpeg == source  # small frames keep their bytes
        assert movie.jpeg(index, lab=False) == source  # RTSP sessions get the original quality
    assert sum("over the lab limit of 20000" in r.getMessage() for r in caplog.records) == 1
    movie.close()


def test_lab_frame_that_fits_no_datagram_is_unavailable(tmp_path):
    frames = [media.movie_frames(1)[0], media.noise_jpeg(1280, 720, quality=95)]
    assert len(frames[1]) > MAX_DATAGRAM_PAYLOAD
    movie = movie_of(tmp_path, frames, name="m.mjpeg", lab_max_frame=0)
    assert movie.jpeg(0, lab=True) == frames[0]
    with pytest.raises(FrameUnavailable, match="does not fit in one UDP datagram"):
        movie.train(1, lab=True, reader="s")


def test_undecodable_frame_is_unavailable_and_said_once(tmp_path, caplog):
    good = media.movie_frames(1)[0]
    bad = bytearray(good)
    bad[bad.find(b"\xff\xc0") + 4] = 12  # 12-bit samples
    movie = movie_of(tmp_path, [good, bytes(bad), bytes(bad)])
    assert movie.unplayable() is None
    for index in (1, 2):
        with pytest.raises(FrameUnavailable, match="cannot be re-encoded"):
            movie.train(index, reader="s")
    assert sum("cannot be re-encoded" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING) == 1
    first_bad = movie_of(tmp_path, [bytes(bad)], name="b.Mjpeg")
    assert "12-bit" in first_bad.unplayable()
    movie.close()
    first_bad.close()


def test_frames_bigger_than_2040_are_scaled_and_the_sdp_size_follows(tmp_path):
    movie = movie_of(tmp_path, [media.scene_jpeg(2400, 1200, quality=70)], name="big.mjpeg")
    assert movie.rtp_size() == (2040, 1016)
    assert (movie.width, movie.height) == (2400, 1200)
    movie.close()


def test_library_close_stops_converters(tmp_path):
    media.write_movie(tmp_path / "a.Mjpeg", media.uncarriable_frames("progressive", 30))
    library = MediaLibrary(tmp_path)
    movie = library.lookup("a.Mjpeg")
    assert movie._converter is not None
    library.close()
    assert movie._converter is None or not movie._converter.is_alive()


def test_streamer_waits_for_the_converter_instead_of_converting(start_server, tmp_path, monkeypatch):
    """With a converter slower than the stream, the session's frames wait (its timeline slips),
    none is skipped, and the Streamer thread converts none itself."""
    import MediaLibrary as library
    from rtsp_tools import RtpReceiver, RtspConn, frames_from_packets
    real = library.to_rfc2435

    def slow(jpeg):
        time.sleep(0.03)  # 3 frame intervals at 100 fps
        return real(jpeg)
    monkeypatch.setattr(library, "to_rfc2435", slow)
    frames = media.uncarriable_frames("444", 20)
    media.write_movie(tmp_path / "slow.Mjpeg", frames)
    srv = start_server(tmp_path, fps=100)
    conn = RtspConn(srv.port)
    receiver = RtpReceiver()
    url = srv.url("slow.Mjpeg")
    reply = conn.request("SETUP", url, {"Transport": f"RTP/AVP;unicast;client_port={receiver.port}-{receiver.port + 1}"})
    session_id = reply.headers["Session"].split(";")[0]
    assert conn.request("PLAY", url, {"Session": session_id}).status == 200
    got = frames_from_packets(receiver.receive(lambda p: sum(x.marker for x in p) >= 20, timeout=20))
    assert len(got) == 20
    for source, frame in zip(frames, got):
        assert media.psnr(source, frame, "YCbCr")["Y"] >= 35
    session = next(iter(srv.server.registry._sessions.values()))
    movie = srv.config.media.lookup("slow.Mjpeg")
    assert session.frames_skipped == 0 and session.frames_waited > 0
    assert movie.inline_conversions == 0
    conn.close()
    receiver.close()
