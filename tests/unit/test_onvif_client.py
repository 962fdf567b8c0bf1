"""The ONVIF client (onvif-zeep-async) against the simulated camera, over loopback HTTP only.

No WS-Discovery here (that is multicast, and runs only inside network namespaces:
tests/integration/test_onvif_discovery.py); the simulator serves just its SOAP services on
127.0.0.1. What is shown: the client logs in with a digest the simulator verifies, reads the
profiles' RTSP URIs, and names each way it can fail (auth, unreachable, not ONVIF, silent).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gridwatch.onvif.media import OnvifError, fetch_device
from tests.plugins.onvif_simulator import OnvifSimulator, SimProfile

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def camera() -> Iterator[OnvifSimulator]:
    profiles = [
        SimProfile("profile_0", "main", "rtsp://127.0.0.1:8554/main", 1920, 1080, 25),
        SimProfile("profile_1", "sub1", "rtsp://127.0.0.1:8554/sub"),
    ]
    with OnvifSimulator("127.0.0.1", profiles, password="pw", discovery=False) as sim:
        yield sim


def test_with_the_right_password_it_lists_the_profiles_rtsp_uris(camera: OnvifSimulator) -> None:
    details = fetch_device(camera.device_url, user="admin", password="pw", timeout_s=10)
    assert (details.manufacturer, details.model, details.firmware) == (
        "gridwatch",
        "SimCam-1",
        "1.0",
    )
    assert [(p.token, p.name, p.rtsp_uri) for p in details.profiles] == [
        ("profile_0", "main", "rtsp://127.0.0.1:8554/main"),
        ("profile_1", "sub1", "rtsp://127.0.0.1:8554/sub"),
    ]
    main = details.profiles[0]
    assert (main.encoding, main.width, main.height, main.fps) == ("H264", 1920, 1080, 25.0)
    # every call was signed (the simulator refuses any other) and the media service was found
    # through GetServices
    assert camera.requests == [
        "GetDeviceInformation",
        "GetServices",
        "GetProfiles",
        "GetStreamUri",
        "GetStreamUri",
    ]
    assert "pw" not in repr(details.to_dict())


def test_a_wrong_password_is_reported_as_such(camera: OnvifSimulator) -> None:
    with pytest.raises(OnvifError, match="refused the user name or password") as err:
        fetch_device(camera.device_url, user="admin", password="nope", timeout_s=10)
    assert err.value.kind == "auth"
    assert camera.requests == ["GetDeviceInformation!"]
    assert "nope" not in str(err.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_closed_port_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/onvif/device_service"
    with pytest.raises(OnvifError) as err:
        fetch_device(url, user="admin", password="pw", timeout_s=5)
    assert err.value.kind == "unreachable"
    assert url in str(err.value)


class _Html(BaseHTTPRequestHandler):
    status = 404

    def do_POST(self) -> None:
        data = b"<html><body>router login</body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [200, 404, 500])
def test_a_web_server_that_is_not_onvif_is_named_so(status: int) -> None:
    handler = type("Html", (_Html,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/onvif/device_service"
        with pytest.raises(OnvifError, match="not an ONVIF") as err:
            fetch_device(url, user="admin", password="pw", timeout_s=5)
        assert err.value.kind == "protocol"
    finally:
        server.shutdown()
        server.server_close()


def test_a_device_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts (the kernel does) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/onvif/device_service"
        with pytest.raises(OnvifError, match=r"no answer within 0\.5s") as err:
            fetch_device(url, user="admin", password="pw", timeout_s=0.5)
    assert err.value.kind == "unreachable"


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(OnvifError) as err:
        fetch_device("soap.udp://10.0.0.7:3702", user="admin", password="pw")
    assert err.value.kind == "protocol"
