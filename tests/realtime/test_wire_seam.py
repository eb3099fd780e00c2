"""The private Twisted seam behind WEBSOCKET_SEND_BUFFER_LIMIT, probed on the installed Twisted.

tests/integration/test_send_buffer_e2e.py shows the bound working on a real
socket; this pins where the bytes are kept, so a Twisted upgrade that moves them
fails here by name instead of silently unbounding every socket.
"""

from twisted.internet.abstract import FileDescriptor

from realtime.wire import held_by_twisted, twisted_seam_ok


def test_twisted_keeps_unsent_bytes_where_the_wire_counts_them():
    fd = FileDescriptor()
    assert twisted_seam_ok(fd) and held_by_twisted(fd) == 0
    # What FileDescriptor.write does with bytes it cannot send now.
    fd._tempDataBuffer.append(b"x" * 100)
    fd._tempDataLen += 100
    fd.dataBuffer, fd.offset = b"y" * 50, 20
    assert held_by_twisted(fd) == 130


def test_a_transport_without_the_seam_is_refused():
    assert not twisted_seam_ok(object()) and not twisted_seam_ok(None)
