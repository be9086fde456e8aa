#!/usr/bin/python3
"""A generic gRPC client that has never seen groupshare's .proto files.

It starts a real tracker on a free loopback port, then learns everything from
server reflection: it lists the services, describes a method, builds the
request types from the descriptors the server sends, and calls CreateUser,
Login and ListGroups with JSON, the way grpcurl would. It also asks the
standard health service. Only grpcio, protobuf and the reflection proto
(Debian's python3-grpcio, python3-protobuf, grpc-proto) are used.

The tracker serves TLS (its own certificate, which it writes beside its
database): the client trusts that certificate, as grpcurl -cacert would. A
tracker run with --plaintext answers plaintext calls, and a plaintext call
to a TLS tracker gets nowhere.

It does the same for a client's peer service (started headless, logged in
by a script): lists it, describes GetPiece, asks its health, and stops it
with SIGTERM. A peer admits only members: the test presents the client's own
certificate (peer-cert.pem, peer-key.pem in its state folder) and trusts the
peer CA (peer-ca.pem), naming the member the certificate is for.

usage: reflection_test.py <tracker binary> <client binary>
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

REFLECTION_PROTO_ROOT = "/usr/share/grpc-proto/grpc"
REFLECTION_PROTO = "reflection/v1alpha/reflection.proto"
TRACKER = "groupshare.tracker.v1.TrackerService"

failures = []
passes = []


def check(condition, what):
    print(("ok: " if condition else "FAILED: ") + what, flush=True)
    (passes if condition else failures).append(what)


def load_reflection_module(workdir):
    # Generated with the grpc-proto root as include path, so no generated
    # "grpc" package shadows grpcio.
    subprocess.run(["protoc", "-I" + REFLECTION_PROTO_ROOT, "--python_out=" + workdir,
                    REFLECTION_PROTO], check=True)
    sys.path.insert(0, workdir)
    from reflection.v1alpha import reflection_pb2  # noqa: E402
    return reflection_pb2


class Reflector:
    def __init__(self, channel, reflection_pb2):
        self.pb = reflection_pb2
        self.call = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        self.pool = descriptor_pool.DescriptorPool()
        self.added = set()

    def ask(self, **kwargs):
        return next(iter(self.call(iter([self.pb.ServerReflectionRequest(**kwargs)]),
                                   timeout=10)))

    def list_services(self):
        return [s.name for s in self.ask(list_services="").list_services_response.service]

    def load_symbol(self, symbol):
        files = self.ask(file_containing_symbol=symbol).file_descriptor_response
        protos = [descriptor_pb2.FileDescriptorProto.FromString(b)
                  for b in files.file_descriptor_proto]
        by_name = {p.name: p for p in protos}

        def add(proto):
            if proto.name in self.added:
                return
            for dep in proto.dependency:
                if dep not in by_name and dep not in self.added:
                    more = self.ask(file_by_filename=dep).file_descriptor_response
                    for b in more.file_descriptor_proto:
                        p = descriptor_pb2.FileDescriptorProto.FromString(b)
                        by_name.setdefault(p.name, p)
                if dep in by_name:
                    add(by_name[dep])
            self.pool.Add(proto)
            self.added.add(proto.name)

        for p in protos:
            add(p)
        return self.pool.FindServiceByName(symbol)


def describe_everything(reflector, channel, own_service):
    """As grpcurl does with no .proto files: every listed service, and every
    message of every method, resolved through reflection alone; then the
    health service called through what reflection described, for the
    server as a whole and for `own_service` by name."""
    services = reflector.list_services()
    for name in services:
        try:
            service = reflector.load_symbol(name)
            for method in service.methods:
                message_class(method.input_type)
                message_class(method.output_type)
            check(True, "describe " + name)
        except Exception as e:  # a symbol not found, a missing file
            check(False, "describe %s: %s" % (name, e))
            return
    health = reflector.load_symbol("grpc.health.v1.Health")
    for body in ({}, {"service": own_service}):
        code, answer = call_json(channel, health, "Check", body)
        check(code == grpc.StatusCode.OK and answer.get("status") == "SERVING",
              "health %s says SERVING: %s %s" % (body, code, answer))


def message_class(desc):
    return message_factory.MessageFactory(desc.file.pool).GetPrototype(desc)


def call_json(channel, service, method_name, body, token=None):
    method = service.FindMethodByName(method_name)
    request_cls = message_class(method.input_type)
    response_cls = message_class(method.output_type)
    request = json_format.Parse(json.dumps(body), request_cls())
    stub = channel.unary_unary("/%s/%s" % (service.full_name, method_name),
                               request_serializer=request_cls.SerializeToString,
                               response_deserializer=response_cls.FromString)
    metadata = [("authorization", "Bearer " + token)] if token else None
    try:
        response = stub(request, metadata=metadata, timeout=10)
        return grpc.StatusCode.OK, json.loads(json_format.MessageToJson(response))
    except grpc.RpcError as e:
        return e.code(), e.details()


def check_peer_service(client_bin, tracker_address, tmp, reflection_pb2):
    info = os.path.join(tmp, "clients_tracker_info.txt")
    with open(info, "w") as f:
        f.write(tracker_address + "\n")
    port_file = os.path.join(tmp, "client.port")
    script = os.path.join(tmp, "login.txt")
    with open(script, "w") as f:
        f.write("create_user peeruser pw\nlogin peeruser pw\n")
    state = os.path.join(tmp, "client")
    client = subprocess.Popen(
        [client_bin, "127.0.0.1:0", info, "--headless", "--state_dir", state,
         "--port_file", port_file, "--script", script],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, HOME=tmp))
    try:
        deadline = time.time() + 20
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.time() > deadline or client.poll() is not None:
                check(False, "the headless client starts")
                return
            time.sleep(0.02)
        cert = os.path.join(state, "peer-cert.pem")
        while not os.path.exists(cert):
            if time.time() > deadline:
                check(False, "the headless client logs in and gets a certificate")
                return
            time.sleep(0.02)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=open(os.path.join(state, "peer-ca.pem"), "rb").read(),
            private_key=open(os.path.join(state, "peer-key.pem"), "rb").read(),
            certificate_chain=open(cert, "rb").read())
        # The peer's certificate names a member, not an address.
        channel = grpc.secure_channel("127.0.0.1:" + open(port_file).read().strip(),
                                      credentials,
                                      options=[("grpc.ssl_target_name_override", "peeruser")])
        grpc.channel_ready_future(channel).result(timeout=20)
        reflector = Reflector(channel, reflection_pb2)
        services = reflector.list_services()
        print("peer services:", ", ".join(services))
        check("groupshare.peer.v1.PeerService" in services, "reflection lists the peer service")
        service = reflector.load_symbol("groupshare.peer.v1.PeerService")
        get_piece = service.FindMethodByName("GetPiece")
        check(get_piece is not None and get_piece.server_streaming and
              "ticket" in get_piece.input_type.fields_by_name,
              "describe shows GetPiece streaming and taking a ticket")
        describe_everything(reflector, channel, "groupshare.peer.v1.PeerService")
    finally:
        client.send_signal(signal.SIGTERM)
        check(client.wait(timeout=20) == 0, "SIGTERM stops the headless client cleanly")


def check_plaintext_tracker(tracker_bin, tmp, reflection_pb2):
    """A tracker run with --plaintext answers plaintext calls."""
    info = os.path.join(tmp, "plain_info.txt")
    with open(info, "w") as f:
        f.write("127.0.0.1:0\n")
    tracker = subprocess.Popen(
        [tracker_bin, info, "1", "--db", os.path.join(tmp, "plain.db"), "--plaintext"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=dict(os.environ, HOME=tmp), text=True)
    try:
        address = tracker.stdout.readline().split(" listening on ")[1].split(" ")[0]
        check("plaintext" in tracker.stdout.readline(), "a --plaintext tracker says so")
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=20)
        check(TRACKER in Reflector(channel, reflection_pb2).list_services(),
              "a --plaintext tracker answers reflection in plaintext")
    finally:
        tracker.stdin.write("quit\n")
        tracker.stdin.flush()
        tracker.wait(timeout=20)


def main():
    tracker_bin = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        reflection_pb2 = load_reflection_module(tmp)
        info = os.path.join(tmp, "tracker_info.txt")
        with open(info, "w") as f:
            f.write("127.0.0.1:0\n")
        tracker = subprocess.Popen(
            [tracker_bin, info, "1", "--db", os.path.join(tmp, "t.db"),
             "--password_iterations", "1000"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=dict(os.environ, HOME=tmp), text=True)
        try:
            first = tracker.stdout.readline()
            address = first.split(" listening on ")[1].split(" ")[0]
            second = tracker.stdout.readline()
            check("TLS certificate sha256=" in second, "the tracker prints its fingerprint")
            root = open(os.path.join(tmp, "t.db.cert.pem"), "rb").read()
            channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root))
            grpc.channel_ready_future(channel).result(timeout=20)
            plain = grpc.insecure_channel(address)
            try:
                grpc.channel_ready_future(plain).result(timeout=2)
                check(False, "a plaintext call to a TLS tracker gets nowhere")
            except grpc.FutureTimeoutError:
                check(True, "a plaintext call to a TLS tracker gets nowhere")
            reflector = Reflector(channel, reflection_pb2)

            services = reflector.list_services()
            print("services:", ", ".join(services))
            check(TRACKER in services, "reflection lists " + TRACKER)
            check("grpc.health.v1.Health" in services, "reflection lists the health service")

            service = reflector.load_symbol(TRACKER)
            methods = [m.name for m in service.methods]
            check({"CreateUser", "Login", "ListGroups", "GetFilePeers"} <= set(methods),
                  "describe lists the methods: " + " ".join(methods))
            login = service.FindMethodByName("Login")
            check(login.input_type.full_name == "groupshare.tracker.v1.LoginRequest" and
                  "peer_address" in login.input_type.fields_by_name,
                  "describe shows Login's request fields")

            code, _ = call_json(channel, service, "CreateUser",
                                {"user_id": "alice", "password": "pw"})
            check(code == grpc.StatusCode.OK, "CreateUser with JSON")
            code, _ = call_json(channel, service, "CreateUser",
                                {"user_id": "alice", "password": "pw"})
            check(code == grpc.StatusCode.ALREADY_EXISTS, "CreateUser twice is ALREADY_EXISTS")
            code, body = call_json(channel, service, "Login",
                                   {"user_id": "alice", "password": "pw"})
            check(code == grpc.StatusCode.OK and len(body.get("token", "")) == 64,
                  "Login returns a token")
            token = body.get("token", "")
            code, _ = call_json(channel, service, "CreateGroup", {"group_id": "g"}, token)
            check(code == grpc.StatusCode.OK, "CreateGroup with the bearer token")
            code, body = call_json(channel, service, "ListGroups", {}, token)
            check(code == grpc.StatusCode.OK and
                  body.get("groups", [{}])[0].get("relation") == "RELATION_OWNER",
                  "ListGroups with the bearer token: %s" % body)
            code, _ = call_json(channel, service, "ListGroups", {})
            check(code == grpc.StatusCode.UNAUTHENTICATED, "ListGroups without a token")

            describe_everything(Reflector(channel, reflection_pb2), channel, TRACKER)

            check_peer_service(sys.argv[2], address, tmp, reflection_pb2)
        finally:
            tracker.stdin.write("quit\n")
            tracker.stdin.flush()
            tracker.wait(timeout=20)
        check_plaintext_tracker(tracker_bin, tmp, reflection_pb2)
    print("%d passed, %d failed" % (len(passes), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
