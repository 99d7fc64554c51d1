// Spec for core/decide.h: commands become events. Access (404 missing, 403
// another user's, admin allowed), If-Match (412 on mismatch, `*` matches any),
// the status rules (409 invalid_status_transition / conversation_not_active),
// stream names and expected revisions as the contract fixes them. Pure: a
// fixed clock and counter-based ids, no I/O.
#include "core/decide.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <variant>

namespace convstore {
namespace {

constexpr int64_t kNow = 1700000000123;
constexpr int64_t kEarlier = 1690000000000;

// A DecideContext whose ids are "00000000-0000-7000-8000-00000000000N" for
// N = 1, 2, ... in call order.
DecideContext Ctx(std::string user, bool admin = false) {
  DecideContext ctx;
  ctx.actor = Actor{std::move(user), admin};
  ctx.now_ms = kNow;
  auto counter = std::make_shared<int>(0);
  ctx.new_uuid = [counter] {
    std::string n = std::to_string(++*counter);
    return "00000000-0000-7000-8000-" + std::string(12 - n.size(), '0') + n;
  };
  return ctx;
}

std::string Uuid(int n) {
  std::string s = std::to_string(n);
  return "00000000-0000-7000-8000-" + std::string(12 - s.size(), '0') + s;
}

Versioned<Agent> AliceAgent(uint64_t revision = 3,
                            std::string instructions = "Be brief.") {
  Agent a;
  a.id = "0190c1e8-aaaa-7000-8000-000000000001";
  a.name = "Support";
  a.instructions = std::move(instructions);
  a.dispatch_name = "support-worker";
  a.metadata = {{"team", "cx"}};
  a.created_by = "alice";
  a.created_at_ms = kEarlier;
  a.updated_at_ms = kEarlier + 5;
  return {a, revision};
}

Versioned<Conversation> AliceConversation(
    ConversationStatus status = ConversationStatus::kActive,
    uint64_t revision = 2) {
  Conversation c;
  c.id = "conv-0190c1e8-cccc-7000-8000-000000000001";
  c.agent_id = "0190c1e8-aaaa-7000-8000-000000000001";
  c.title = "Call";
  c.created_by = "alice";
  c.status = status;
  c.metadata = {{"k", "v"}};
  c.created_at_ms = kEarlier;
  c.updated_at_ms = kEarlier + 7;
  return {c, revision};
}

template <typename T>
void ExpectKind(const Result<T>& r, ErrorKind kind, std::string_view code = {}) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().kind(), kind) << r.status().ToString();
  if (!code.empty()) {
    EXPECT_EQ(r.status().code(), code);
  }
}

template <typename P, typename T>
const P& PayloadAs(const T& event) {
  const P* p = std::get_if<P>(&event.payload);
  if (p == nullptr) {
    ADD_FAILURE() << "payload is " << EventTypeName(event.payload);
    static const P kEmpty{};
    return kEmpty;
  }
  return *p;
}

// ---------------------------------------------------------------------------
// Access and If-Match rules

TEST(CheckAccessTest, MissingIsNotFound) {
  EXPECT_EQ(CheckAccess(false, "", Actor{"alice", false}, "Agent").kind(),
            ErrorKind::kNotFound);
  // Even for an admin: nothing to show.
  EXPECT_EQ(CheckAccess(false, "", Actor{"root", true}, "Agent").kind(),
            ErrorKind::kNotFound);
}

TEST(CheckAccessTest, AnotherUsersIsPermissionDenied) {
  EXPECT_EQ(CheckAccess(true, "bob", Actor{"alice", false}, "Agent").kind(),
            ErrorKind::kPermissionDenied);
}

TEST(CheckAccessTest, OwnerAndAdminAreAllowed) {
  EXPECT_TRUE(CheckAccess(true, "alice", Actor{"alice", false}, "Agent").ok());
  EXPECT_TRUE(CheckAccess(true, "bob", Actor{"root", true}, "Agent").ok());
}

TEST(CheckIfMatchTest, AbsentOrAnyOrEqualMatches) {
  EXPECT_TRUE(CheckIfMatch(std::nullopt, 4).ok());
  EXPECT_TRUE(CheckIfMatch(IfMatch{true, 0}, 4).ok());
  EXPECT_TRUE(CheckIfMatch(IfMatch{false, 4}, 4).ok());
}

TEST(CheckIfMatchTest, OtherRevisionIsPreconditionFailed) {
  for (uint64_t other : {0u, 3u, 5u}) {
    Status s = CheckIfMatch(IfMatch{false, other}, 4);
    EXPECT_EQ(s.kind(), ErrorKind::kPreconditionFailed) << other;
  }
}

// ---------------------------------------------------------------------------
// Agents

TEST(DecideCreateAgentTest, WritesAgentCreatedOnANewStream) {
  CreateAgentRequest req;
  req.name = "Support";
  req.instructions = "Be brief.";
  req.dispatch_name = "support-worker";
  req.metadata = {{"b", "2"}, {"a", "1"}};
  auto d = DecideCreateAgent(req, Ctx("alice"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();

  const Agent& a = d->result;
  EXPECT_EQ(a.id, Uuid(1));
  EXPECT_EQ(a.name, "Support");
  EXPECT_EQ(a.instructions, "Be brief.");
  EXPECT_EQ(a.dispatch_name, std::optional<std::string>("support-worker"));
  EXPECT_EQ(a.metadata, (Metadata{{"b", "2"}, {"a", "1"}}));
  EXPECT_EQ(a.created_by, "alice");
  EXPECT_EQ(a.created_at_ms, kNow);
  EXPECT_EQ(a.updated_at_ms, kNow);
  EXPECT_EQ(d->revision, 0u);

  ASSERT_EQ(d->events.size(), 1u);
  EXPECT_EQ(d->events[0].stream, "agent-" + Uuid(1));
  EXPECT_EQ(d->events[0].expected_revision,
            std::optional<int64_t>(NewEvent::kNoStream));
  EXPECT_EQ(PayloadAs<AgentCreated>(d->events[0]).agent, a);
}

TEST(DecideCreateAgentTest, AdminOwnsWhatItCreates) {
  CreateAgentRequest req;
  req.name = "n";
  auto d = DecideCreateAgent(req, Ctx("root", /*admin=*/true));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->result.created_by, "root");
  EXPECT_EQ(d->result.dispatch_name, std::nullopt);
}

TEST(DecideUpdateAgentTest, MissingAgentIsNotFound) {
  UpdateAgentRequest req;
  req.name = "x";
  ExpectKind(DecideUpdateAgent(req, std::nullopt, std::nullopt, Ctx("alice")),
             ErrorKind::kNotFound);
}

TEST(DecideUpdateAgentTest, AnotherUsersAgentIsPermissionDenied) {
  UpdateAgentRequest req;
  req.name = "x";
  ExpectKind(DecideUpdateAgent(req, AliceAgent(), std::nullopt, Ctx("bob")),
             ErrorKind::kPermissionDenied);
}

TEST(DecideUpdateAgentTest, PermissionIsCheckedBeforeIfMatch) {
  // A stranger learns nothing about the revision.
  UpdateAgentRequest req;
  req.name = "x";
  ExpectKind(
      DecideUpdateAgent(req, AliceAgent(3), IfMatch{false, 9}, Ctx("bob")),
      ErrorKind::kPermissionDenied);
}

TEST(DecideUpdateAgentTest, AdminMayUpdateAnotherUsersAgent) {
  UpdateAgentRequest req;
  req.name = "Renamed";
  auto d = DecideUpdateAgent(req, AliceAgent(), std::nullopt,
                             Ctx("root", /*admin=*/true));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->result.name, "Renamed");
  EXPECT_EQ(d->result.created_by, "alice");  // ownership does not move
  EXPECT_EQ(d->events.size(), 1u);
}

TEST(DecideUpdateAgentTest, IfMatchMismatchIsPreconditionFailed) {
  UpdateAgentRequest req;
  req.name = "x";
  ExpectKind(
      DecideUpdateAgent(req, AliceAgent(3), IfMatch{false, 2}, Ctx("alice")),
      ErrorKind::kPreconditionFailed);
}

TEST(DecideUpdateAgentTest, IfMatchAnyOrCurrentRevisionMatches) {
  UpdateAgentRequest req;
  req.name = "x";
  EXPECT_TRUE(
      DecideUpdateAgent(req, AliceAgent(3), IfMatch{true, 0}, Ctx("alice"))
          .ok());
  EXPECT_TRUE(
      DecideUpdateAgent(req, AliceAgent(3), IfMatch{false, 3}, Ctx("alice"))
          .ok());
}

TEST(DecideUpdateAgentTest, ChangeWritesAgentUpdatedWithTheWholeNewValue) {
  UpdateAgentRequest req;
  req.name = "Renamed";
  req.metadata = Metadata{{"x", "y"}};
  auto d = DecideUpdateAgent(req, AliceAgent(3), std::nullopt, Ctx("alice"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->revision, 4u);

  Agent want = AliceAgent().value;
  want.name = "Renamed";
  want.metadata = {{"x", "y"}};
  want.updated_at_ms = kNow;
  EXPECT_EQ(d->result, want);

  ASSERT_EQ(d->events.size(), 1u);
  EXPECT_EQ(d->events[0].stream, "agent-" + want.id);
  EXPECT_EQ(d->events[0].expected_revision, std::optional<int64_t>(3));
  const auto& e = PayloadAs<AgentUpdated>(d->events[0]);
  EXPECT_EQ(e.agent_id, want.id);
  EXPECT_EQ(e.name, "Renamed");
  EXPECT_EQ(e.instructions, "Be brief.");  // unchanged fields carried along
  EXPECT_EQ(e.dispatch_name, std::optional<std::string>("support-worker"));
  EXPECT_EQ(e.metadata, (Metadata{{"x", "y"}}));
  EXPECT_EQ(e.updated_at_ms, kNow);
}

TEST(DecideUpdateAgentTest, NullDispatchNameClearsIt) {
  UpdateAgentRequest req;
  req.dispatch_name = std::optional<std::string>();
  auto d = DecideUpdateAgent(req, AliceAgent(), std::nullopt, Ctx("alice"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->result.dispatch_name, std::nullopt);
  ASSERT_EQ(d->events.size(), 1u);
  EXPECT_EQ(PayloadAs<AgentUpdated>(d->events[0]).dispatch_name, std::nullopt);
}

TEST(DecideUpdateAgentTest, NoChangeWritesNoEventAndKeepsRevision) {
  const Versioned<Agent> cur = AliceAgent(3);
  UpdateAgentRequest same;
  same.name = cur.value.name;
  same.instructions = cur.value.instructions;
  same.dispatch_name = cur.value.dispatch_name;
  same.metadata = cur.value.metadata;
  for (const UpdateAgentRequest& req : {UpdateAgentRequest{}, same}) {
    auto d = DecideUpdateAgent(req, cur, IfMatch{false, 3}, Ctx("alice"));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_TRUE(d->events.empty());
    EXPECT_EQ(d->revision, 3u);
    EXPECT_EQ(d->result, cur.value);  // updated_at does not move either
  }
}

TEST(DecideDeleteAgentTest, MissingIsNotFoundAndStrangerIsDenied) {
  ExpectKind(DecideDeleteAgent(std::nullopt, std::nullopt, Ctx("alice")),
             ErrorKind::kNotFound);
  ExpectKind(DecideDeleteAgent(AliceAgent(), std::nullopt, Ctx("bob")),
             ErrorKind::kPermissionDenied);
}

TEST(DecideDeleteAgentTest, IfMatchMismatchIsPreconditionFailed) {
  ExpectKind(DecideDeleteAgent(AliceAgent(3), IfMatch{false, 1}, Ctx("alice")),
             ErrorKind::kPreconditionFailed);
}

TEST(DecideDeleteAgentTest, WritesAgentDeletedAtTheCurrentRevision) {
  for (const DecideContext& ctx : {Ctx("alice"), Ctx("root", true)}) {
    auto d = DecideDeleteAgent(AliceAgent(3), IfMatch{true, 0}, ctx);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_EQ(d->events.size(), 1u);
    EXPECT_EQ(d->events[0].stream, "agent-" + AliceAgent().value.id);
    EXPECT_EQ(d->events[0].expected_revision, std::optional<int64_t>(3));
    const auto& e = PayloadAs<AgentDeleted>(d->events[0]);
    EXPECT_EQ(e.agent_id, AliceAgent().value.id);
    EXPECT_EQ(e.deleted_at_ms, kNow);
    EXPECT_EQ(d->revision, 4u);
  }
}

// ---------------------------------------------------------------------------
// Conversations

CreateConversationRequest ConvRequest() {
  CreateConversationRequest req;
  req.agent_id = AliceAgent().value.id;
  req.title = "Onboarding call";
  req.metadata = {{"customer", "42"}};
  return req;
}

TEST(DecideCreateConversationTest, MissingAgentIsNotFound) {
  ExpectKind(DecideCreateConversation(ConvRequest(), std::nullopt, Ctx("alice")),
             ErrorKind::kNotFound);
}

TEST(DecideCreateConversationTest, AnotherUsersAgentIsPermissionDenied) {
  ExpectKind(DecideCreateConversation(ConvRequest(), AliceAgent(), Ctx("bob")),
             ErrorKind::kPermissionDenied);
}

TEST(DecideCreateConversationTest, AdminMayUseAnotherUsersAgent) {
  auto d = DecideCreateConversation(ConvRequest(), AliceAgent(),
                                    Ctx("root", /*admin=*/true));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->result.created_by, "root");  // the actor, as the contract says
}

TEST(DecideCreateConversationTest, WritesConversationCreatedOnNewStream) {
  auto d = DecideCreateConversation(ConvRequest(), AliceAgent(3, ""),
                                    Ctx("alice"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const Conversation& c = d->result;
  EXPECT_EQ(c.id, "conv-" + Uuid(1));
  EXPECT_EQ(c.agent_id, AliceAgent().value.id);
  EXPECT_EQ(c.title, "Onboarding call");
  EXPECT_EQ(c.created_by, "alice");
  EXPECT_EQ(c.status, ConversationStatus::kActive);
  EXPECT_EQ(c.metadata, (Metadata{{"customer", "42"}}));
  EXPECT_EQ(c.created_at_ms, kNow);
  EXPECT_EQ(c.updated_at_ms, kNow);
  EXPECT_EQ(d->revision, 0u);

  ASSERT_EQ(d->events.size(), 1u) << "no instructions: no system message";
  EXPECT_EQ(d->events[0].stream, "conversation-conv-" + Uuid(1));
  EXPECT_EQ(d->events[0].expected_revision,
            std::optional<int64_t>(NewEvent::kNoStream));
  EXPECT_EQ(PayloadAs<ConversationCreated>(d->events[0]).conversation, c);
}

TEST(DecideCreateConversationTest, InstructionsBecomeTheFirstSystemMessage) {
  auto d = DecideCreateConversation(ConvRequest(),
                                    AliceAgent(3, "You are a helpful agent."),
                                    Ctx("alice"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->events.size(), 2u);
  const std::string conv_id = d->result.id;
  EXPECT_EQ(d->events[0].stream, "conversation-" + conv_id);
  EXPECT_TRUE(std::holds_alternative<ConversationCreated>(d->events[0].payload));

  EXPECT_EQ(d->events[1].stream, "messages-" + conv_id);
  EXPECT_EQ(d->events[1].expected_revision,
            std::optional<int64_t>(NewEvent::kNoStream));
  const Message& m = PayloadAs<MessageAppended>(d->events[1]).message;
  EXPECT_EQ(m.id, "msg-" + Uuid(2));
  EXPECT_EQ(m.conversation_id, conv_id);
  EXPECT_EQ(m.role, MessageRole::kSystem);
  EXPECT_EQ(m.content, "You are a helpful agent.");
  EXPECT_EQ(m.created_at_ms, d->result.created_at_ms);
}

// ---------------------------------------------------------------------------
// PATCH conversation

UpdateConversationRequest StatusTo(ConversationStatus s) {
  UpdateConversationRequest req;
  req.status = s;
  return req;
}

TEST(DecideUpdateConversationTest, AccessRules) {
  UpdateConversationRequest req;
  req.title = "x";
  ExpectKind(
      DecideUpdateConversation(req, std::nullopt, std::nullopt, Ctx("alice")),
      ErrorKind::kNotFound);
  ExpectKind(DecideUpdateConversation(req, AliceConversation(), std::nullopt,
                                      Ctx("bob")),
             ErrorKind::kPermissionDenied);
  auto admin = DecideUpdateConversation(req, AliceConversation(), std::nullopt,
                                        Ctx("root", /*admin=*/true));
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  EXPECT_EQ(admin->result.title, "x");
  EXPECT_EQ(admin->result.created_by, "alice");
}

TEST(DecideUpdateConversationTest, IfMatchRules) {
  UpdateConversationRequest req;
  req.title = "x";
  ExpectKind(DecideUpdateConversation(req, AliceConversation({}, 2),
                                      IfMatch{false, 1}, Ctx("alice")),
             ErrorKind::kPreconditionFailed);
  EXPECT_TRUE(DecideUpdateConversation(req, AliceConversation({}, 2),
                                       IfMatch{false, 2}, Ctx("alice"))
                  .ok());
  EXPECT_TRUE(DecideUpdateConversation(req, AliceConversation({}, 2),
                                       IfMatch{true, 0}, Ctx("alice"))
                  .ok());
}

TEST(DecideUpdateConversationTest, NoChangeWritesNoEventAndKeepsRevision) {
  const auto cur = AliceConversation(ConversationStatus::kActive, 2);
  UpdateConversationRequest same;
  same.title = cur.value.title;
  same.status = cur.value.status;
  same.metadata = cur.value.metadata;
  for (const auto& req : {UpdateConversationRequest{}, same}) {
    auto d = DecideUpdateConversation(req, cur, std::nullopt, Ctx("alice"));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_TRUE(d->events.empty());
    EXPECT_EQ(d->revision, 2u);
    EXPECT_EQ(d->result, cur.value);
  }
}

TEST(DecideUpdateConversationTest, TitleChangeWritesConversationUpdated) {
  UpdateConversationRequest req;
  req.title = "Renamed";
  const auto cur = AliceConversation(ConversationStatus::kActive, 2);
  auto d = DecideUpdateConversation(req, cur, std::nullopt, Ctx("alice"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->events.size(), 1u);
  EXPECT_EQ(d->events[0].stream, "conversation-" + cur.value.id);
  EXPECT_EQ(d->events[0].expected_revision, std::optional<int64_t>(2));
  const auto& e = PayloadAs<ConversationUpdated>(d->events[0]);
  EXPECT_EQ(e.conversation_id, cur.value.id);
  EXPECT_EQ(e.title, "Renamed");
  EXPECT_EQ(e.metadata, cur.value.metadata);  // kept, whole value carried
  EXPECT_EQ(e.updated_at_ms, kNow);
  EXPECT_EQ(d->revision, 3u);
  EXPECT_EQ(d->result.title, "Renamed");
  EXPECT_EQ(d->result.updated_at_ms, kNow);
}

TEST(DecideUpdateConversationTest, MetadataReplacesTheWholeObject) {
  UpdateConversationRequest req;
  req.metadata = Metadata{};
  auto d = DecideUpdateConversation(req, AliceConversation(), std::nullopt,
                                    Ctx("alice"));
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->events.size(), 1u);
  EXPECT_TRUE(PayloadAs<ConversationUpdated>(d->events[0]).metadata.empty());
  EXPECT_EQ(PayloadAs<ConversationUpdated>(d->events[0]).title, "Call");
  EXPECT_TRUE(d->result.metadata.empty());
}

TEST(DecideUpdateConversationTest, TitleAndStatusWriteTwoConsecutiveEvents) {
  UpdateConversationRequest req;
  req.title = "Done call";
  req.status = ConversationStatus::kCompleted;
  const auto cur = AliceConversation(ConversationStatus::kActive, 5);
  auto d = DecideUpdateConversation(req, cur, IfMatch{false, 5}, Ctx("alice"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->events.size(), 2u);
  EXPECT_EQ(d->events[0].stream, "conversation-" + cur.value.id);
  EXPECT_EQ(d->events[1].stream, "conversation-" + cur.value.id);
  EXPECT_EQ(d->events[0].expected_revision, std::optional<int64_t>(5));
  EXPECT_EQ(d->events[1].expected_revision, std::optional<int64_t>(6));
  EXPECT_EQ(PayloadAs<ConversationUpdated>(d->events[0]).title, "Done call");
  const auto& s = PayloadAs<ConversationStatusChanged>(d->events[1]);
  EXPECT_EQ(s.conversation_id, cur.value.id);
  EXPECT_EQ(s.from, ConversationStatus::kActive);
  EXPECT_EQ(s.to, ConversationStatus::kCompleted);
  EXPECT_EQ(s.updated_at_ms, kNow);
  EXPECT_EQ(d->revision, 7u);
  EXPECT_EQ(d->result.title, "Done call");
  EXPECT_EQ(d->result.status, ConversationStatus::kCompleted);
  EXPECT_EQ(d->result.updated_at_ms, kNow);
}

struct Transition {
  ConversationStatus from;
  ConversationStatus to;
  bool allowed;
};

constexpr ConversationStatus kA = ConversationStatus::kActive;
constexpr ConversationStatus kC = ConversationStatus::kCompleted;
constexpr ConversationStatus kR = ConversationStatus::kArchived;

// Every (from, to) pair with from != to.
constexpr Transition kTransitions[] = {
    {kA, kC, true},  {kA, kR, true},  {kC, kR, true},
    {kC, kA, false}, {kR, kA, false}, {kR, kC, false},
};

TEST(IsAllowedTransitionTest, MatchesTheContract) {
  for (const Transition& t : kTransitions) {
    EXPECT_EQ(IsAllowedTransition(t.from, t.to), t.allowed)
        << ToString(t.from) << " -> " << ToString(t.to);
  }
}

TEST(DecideUpdateConversationTest, AllowedTransitionsWriteStatusChanged) {
  for (const Transition& t : kTransitions) {
    if (!t.allowed) continue;
    SCOPED_TRACE(std::string(ToString(t.from)) + " -> " +
                 std::string(ToString(t.to)));
    auto d = DecideUpdateConversation(StatusTo(t.to), AliceConversation(t.from, 4),
                                      std::nullopt, Ctx("alice"));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_EQ(d->events.size(), 1u);
    EXPECT_EQ(d->events[0].expected_revision, std::optional<int64_t>(4));
    const auto& e = PayloadAs<ConversationStatusChanged>(d->events[0]);
    EXPECT_EQ(e.from, t.from);
    EXPECT_EQ(e.to, t.to);
    EXPECT_EQ(d->result.status, t.to);
    EXPECT_EQ(d->revision, 5u);
  }
}

TEST(DecideUpdateConversationTest, ForbiddenTransitionsAreConflicts) {
  for (const Transition& t : kTransitions) {
    if (t.allowed) continue;
    SCOPED_TRACE(std::string(ToString(t.from)) + " -> " +
                 std::string(ToString(t.to)));
    ExpectKind(DecideUpdateConversation(StatusTo(t.to), AliceConversation(t.from),
                                        std::nullopt, Ctx("alice")),
               ErrorKind::kConflict, "invalid_status_transition");
  }
}

TEST(DecideUpdateConversationTest, ForbiddenTransitionWritesNothingElse) {
  UpdateConversationRequest req;
  req.title = "New title";
  req.status = ConversationStatus::kActive;
  ExpectKind(DecideUpdateConversation(req, AliceConversation(kR), std::nullopt,
                                      Ctx("alice")),
             ErrorKind::kConflict, "invalid_status_transition");
}

TEST(DecideUpdateConversationTest, SameStatusIsNoTransition) {
  for (ConversationStatus s : {kA, kC, kR}) {
    auto d = DecideUpdateConversation(StatusTo(s), AliceConversation(s, 2),
                                      std::nullopt, Ctx("alice"));
    ASSERT_TRUE(d.ok()) << ToString(s) << ": " << d.status().ToString();
    EXPECT_TRUE(d->events.empty()) << ToString(s);
    EXPECT_EQ(d->revision, 2u);
  }
}

TEST(DecideUpdateConversationTest, TitleMayChangeInAnyStatus) {
  for (ConversationStatus s : {kA, kC, kR}) {
    UpdateConversationRequest req;
    req.title = "Later title";
    auto d = DecideUpdateConversation(req, AliceConversation(s), std::nullopt,
                                      Ctx("alice"));
    ASSERT_TRUE(d.ok()) << ToString(s) << ": " << d.status().ToString();
    EXPECT_EQ(d->events.size(), 1u);
    EXPECT_EQ(d->result.status, s);
  }
}

// ---------------------------------------------------------------------------
// Messages

AppendMessageRequest UserSays(std::string content) {
  AppendMessageRequest req;
  req.role = MessageRole::kUser;
  req.content = std::move(content);
  return req;
}

// What an append decides on, as the writer reads it from the list entry
// (views into `c`).
AppendTarget TargetOf(const Versioned<Conversation>& c) {
  return {c.value.id, c.value.created_by, c.value.status, c.revision};
}

TEST(DecideAppendMessageTest, AccessRules) {
  ExpectKind(DecideAppendMessage(UserSays("hi"), std::nullopt, Ctx("alice")),
             ErrorKind::kNotFound);
  ExpectKind(DecideAppendMessage(UserSays("hi"), TargetOf(AliceConversation()),
                                 Ctx("bob")),
             ErrorKind::kPermissionDenied);
  EXPECT_TRUE(DecideAppendMessage(UserSays("hi"), TargetOf(AliceConversation()),
                                  Ctx("root", /*admin=*/true))
                  .ok());
}

TEST(DecideAppendMessageTest, OnlyAnActiveConversationTakesMessages) {
  for (ConversationStatus s : {kC, kR}) {
    ExpectKind(
        DecideAppendMessage(UserSays("hi"), TargetOf(AliceConversation(s)),
                            Ctx("alice")),
        ErrorKind::kConflict, "conversation_not_active");
  }
}

TEST(DecideAppendMessageTest, WritesMessageAppendedOnTheMessagesStream) {
  const auto cur = AliceConversation(kA, 2);
  AppendMessageRequest req;
  req.role = MessageRole::kAssistant;
  req.content = "Hello \xF0\x9F\x91\x8B";
  auto d = DecideAppendMessage(req, TargetOf(cur), Ctx("alice"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const Message& m = d->result;
  EXPECT_EQ(m.id, "msg-" + Uuid(1));
  EXPECT_EQ(m.conversation_id, cur.value.id);
  EXPECT_EQ(m.role, MessageRole::kAssistant);
  EXPECT_EQ(m.content, "Hello \xF0\x9F\x91\x8B");
  EXPECT_EQ(m.created_at_ms, kNow);
  ASSERT_EQ(d->events.size(), 1u);
  EXPECT_EQ(d->events[0].stream, "messages-" + cur.value.id);
  EXPECT_EQ(PayloadAs<MessageAppended>(d->events[0]).message, m);
  // Appending a message changes neither the conversation's ETag...
  EXPECT_EQ(d->revision, 2u);
  // ...nor does it go through the conversation stream.
  EXPECT_NE(d->events[0].stream, "conversation-" + cur.value.id);
}

TEST(DecideTest, FreshIdsComeFromTheContext) {
  DecideContext ctx = Ctx("alice");
  auto first =
      DecideAppendMessage(UserSays("a"), TargetOf(AliceConversation()), ctx);
  auto second =
      DecideAppendMessage(UserSays("b"), TargetOf(AliceConversation()), ctx);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(first->result.id, "msg-" + Uuid(1));
  EXPECT_EQ(second->result.id, "msg-" + Uuid(2));
}

}  // namespace
}  // namespace convstore
