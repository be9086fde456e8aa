// A callback method's request and response on a protobuf arena of their
// own: a response of many entries (a listing) is allocated in a few blocks
// and freed at once, rather than an allocation an entry and its fields.
//
// Set with the generated WithCallbackMethod_X's SetMessageAllocatorFor_X;
// thread-safe (each call gets its own arena).
#ifndef GROUPSHARE_SERVICES_COMMON_ARENA_MESSAGES_H_
#define GROUPSHARE_SERVICES_COMMON_ARENA_MESSAGES_H_

#include <google/protobuf/arena.h>
#include <grpcpp/support/message_allocator.h>

#include <cstddef>

namespace groupshare {

template <class Request, class Response>
class ArenaMessages final : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder; }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(Options(initial_block_)) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    // The first block lives in the holder: a small call allocates once.
    static constexpr size_t kInitialBlock = 16 << 10;
    static google::protobuf::ArenaOptions Options(char* initial_block) {
      google::protobuf::ArenaOptions options;
      options.initial_block = initial_block;
      options.initial_block_size = kInitialBlock;
      return options;
    }
    alignas(std::max_align_t) char initial_block_[kInitialBlock];
    google::protobuf::Arena arena_;
  };
};

}  // namespace groupshare

#endif  // GROUPSHARE_SERVICES_COMMON_ARENA_MESSAGES_H_
