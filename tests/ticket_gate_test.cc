// Which calls a peer serves, by their tickets, on a clock the test sets.
#include "services/peer/ticket_gate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "core/ids.h"
#include "core/tracker_info.h"
#include "groupshare/peer/v1/peer.pb.h"
#include "services/peer/peer_service.h"

namespace groupshare::peer {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
const std::string kSha1(40, 'a');

class TicketGateTest : public ::testing::Test {
 protected:
  TicketGateTest() : gate_([this] { return now_; }) {
    signer_ = *TicketSigner::Generate();
    gate_.SetSelfAddress("127.0.0.1:7001");
  }
  std::shared_ptr<const TicketVerifier> Verifier(const TicketSigner& signer) {
    return std::shared_ptr<const TicketVerifier>(*TicketVerifier::Create(signer.PublicKey()));
  }
  std::string Sign(const std::string& peer, const std::string& group = "g",
                   absl::Duration lives = absl::Minutes(3)) {
    return *signer_->Sign({"bob", group, kSha1, peer, kT0 + lives});
  }
  absl::StatusCode Code(const std::string& ticket, const std::string& group = "g") {
    return gate_.Authorize(ticket, group, kSha1).status().code();
  }

  absl::Time now_ = kT0;
  std::unique_ptr<TicketSigner> signer_;
  TicketGate gate_;
};

TEST_F(TicketGateTest, ATicketForThisPeerGroupAndFileIsServedUntilItExpires) {
  gate_.SetVerifier(Verifier(*signer_));
  const std::string ticket = Sign("127.0.0.1:7001");
  auto t = gate_.Authorize(ticket, "g", kSha1);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->user_id, "bob");
  EXPECT_EQ(Code(ticket), absl::StatusCode::kOk);  // remembered
  // A clock ahead of the tracker's by less than the slack still takes it.
  now_ = kT0 + absl::Minutes(3) + kClockSlack - absl::Seconds(1);
  EXPECT_EQ(Code(ticket), absl::StatusCode::kOk);
  now_ = kT0 + absl::Minutes(3) + kClockSlack;
  EXPECT_EQ(Code(ticket), absl::StatusCode::kPermissionDenied);  // expired, remembered or not
}

TEST_F(TicketGateTest, TicketsForAnotherPeerGroupOrKeyAreRefused) {
  gate_.SetVerifier(Verifier(*signer_));
  auto other_peer = gate_.Authorize(Sign("127.0.0.1:7002"), "g", kSha1);
  EXPECT_EQ(other_peer.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(other_peer.status().message()),
              HasSubstr("made out to the peer at 127.0.0.1:7002, not to this one"));
  EXPECT_EQ(Code(Sign("127.0.0.1:7001", "h")), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code(Sign("127.0.0.1:7001"), "h"), absl::StatusCode::kPermissionDenied);
  auto stranger = *TicketSigner::Generate();
  EXPECT_EQ(Code(*stranger->Sign({"bob", "g", kSha1, "127.0.0.1:7001", kT0 + absl::Hours(1)})),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code("not a ticket"), absl::StatusCode::kPermissionDenied);
}

TEST_F(TicketGateTest, LoggedOutAShutdownOrAMoveRefusesWhatWasServed) {
  const std::string ticket = Sign("127.0.0.1:7001");
  EXPECT_EQ(Code(ticket), absl::StatusCode::kUnavailable);  // no keys yet: logged out
  gate_.SetVerifier(Verifier(*signer_));
  ASSERT_EQ(Code(ticket), absl::StatusCode::kOk);
  gate_.SetSelfAddress("127.0.0.1:7009");  // the peer moved: the remembered one goes too
  EXPECT_EQ(Code(ticket), absl::StatusCode::kPermissionDenied);
  gate_.SetSelfAddress("127.0.0.1:7001");
  // New keys from another signer: the remembered ticket is checked again.
  gate_.SetVerifier(Verifier(**TicketSigner::Generate()));
  EXPECT_EQ(Code(ticket), absl::StatusCode::kPermissionDenied);
  gate_.SetVerifier(Verifier(*signer_));
  gate_.Shutdown();
  EXPECT_EQ(Code(ticket), absl::StatusCode::kUnavailable);
}

// A peer reads requests of kMaxPeerRequestBytes at most: the largest a
// member can make, with a ticket for the longest ids and host name and as
// many pieces as a call may name, fits with room to spare.
TEST_F(TicketGateTest, TheLargestRequestAMemberCanMakeFitsThePeersLimit) {
  const std::string user(kMaxIdBytes, 'u'), group(kMaxIdBytes, 'g');
  const std::string peer = std::string(kMaxHostBytes, 'h') + ":65535";
  auto ticket = signer_->Sign({user, group, kSha1, peer, kT0 + absl::Hours(24 * 365 * 100)});
  ASSERT_TRUE(ticket.ok()) << ticket.status();
  EXPECT_LT(ticket->size(), 1024u);

  pv1::GetPieceRequest pieces;
  pieces.set_ticket(*ticket);
  pieces.set_group_id(group);
  pieces.set_file_sha1(kSha1);
  const uint32_t most = PeerServiceOptions{}.max_pieces_per_request;
  for (uint32_t i = 0; i < most; ++i) pieces.add_pieces(kMaxPieceCount - 1 - i);
  ASSERT_TRUE(CheckPieceRequest(pieces, most).ok());
  EXPECT_LT(pieces.ByteSizeLong(), 1536u);

  pv1::GetBitfieldRequest bitfield;
  bitfield.set_ticket(*ticket);
  bitfield.set_group_id(group);
  bitfield.set_file_sha1(kSha1);
  EXPECT_LT(bitfield.ByteSizeLong(), pieces.ByteSizeLong());
  EXPECT_LT(pieces.ByteSizeLong() * 2, static_cast<size_t>(kMaxPeerRequestBytes));
}

}  // namespace
}  // namespace groupshare::peer
