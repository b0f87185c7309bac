// A test harness over engine/scheduler.h with plain JS objects in and out and no kernels (vLLM's
// test_scheduler.py style). Exported as `createSchedulerHarness(opts)` for src/engine/scheduler.spec.ts; not
// part of NativeModule.
#include <napi.h>

#include <memory>

#include "binding/model_wrap.h"
#include "binding/napi_util.h"
#include "engine/scheduler.h"

namespace lmfleet {

namespace {

Napi::Array events_to_js(Napi::Env env, const std::vector<Event>& events) {
  Napi::Array a = Napi::Array::New(env, events.size());
  for (size_t i = 0; i < events.size(); i++) {
    const Event& e = events[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", Napi::Number::New(env, (double)e.id));
    if (e.kind == Event::Tokens) {
      o.Set("type", "tokens");
      Napi::Array t = Napi::Array::New(env, e.tokens.size());
      for (size_t j = 0; j < e.tokens.size(); j++) t.Set(j, Napi::Number::New(env, e.tokens[j]));
      o.Set("tokens", t);
    } else if (e.kind == Event::Done) {
      o.Set("type", "done");
      o.Set("finishReason", e.finish_reason);
      o.Set("completionTokens", Napi::Number::New(env, (double)e.completion_tokens));
      o.Set("cachedTokens", Napi::Number::New(env, (double)e.cached_tokens));
      o.Set("draftTokens", Napi::Number::New(env, (double)e.draft_tokens));
      o.Set("acceptedTokens", Napi::Number::New(env, (double)e.accepted_tokens));
    } else {
      o.Set("type", "error");
      o.Set("code", e.code);
      o.Set("message", e.message);
    }
    a.Set(i, o);
  }
  return a;
}

class SchedulerHarness : public Napi::ObjectWrap<SchedulerHarness> {
 public:
  static Napi::FunctionReference constructor;
  explicit SchedulerHarness(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SchedulerHarness>(info) {
    js_guard(info.Env(), [&] {
      if (!info[0].IsObject()) fail(ErrorCode::InvalidArgument, "createSchedulerHarness(opts)");
      Napi::Object o = info[0].As<Napi::Object>();
      blocks_ = std::make_unique<BlockAllocator>((int64_t)get_number(o, "numBlocks", 0, true),
                                                 (int64_t)get_number(o, "blockSize", 0, true));
      SchedulerOptions so;
      so.max_batch_size = (int64_t)get_number(o, "maxBatchSize", 8);
      so.session_len = (int64_t)get_number(o, "sessionLen", 2048);
      so.max_prefill_tokens = (int64_t)get_number(o, "maxPrefillTokens", 2048);
      so.enable_prefix_caching = get_bool(o, "enablePrefixCaching", false);
      so.spec_draft_tokens = (int64_t)get_number(o, "specDraftTokens", 0);
      so.spec_ngram_max = (int64_t)get_number(o, "specNgramMax", 4);
      so.spec_ngram_min = (int64_t)get_number(o, "specNgramMin", 1);
      sched_ = std::make_unique<Scheduler>(*blocks_, so);
    });
  }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    return js_guard(info.Env(), [&]() -> Napi::Value {
      Napi::Object o = info[0].As<Napi::Object>();
      RequestSpec r;
      r.id = (int64_t)get_number(o, "id", 0, true);
      r.session_id = (int64_t)get_number(o, "sessionId", 0);
      r.max_new_tokens = (int64_t)get_number(o, "maxNewTokens", 0, true);
      Napi::Array ids = o.Get("inputIds").As<Napi::Array>();
      for (uint32_t i = 0; i < ids.Length(); i++) r.input_ids.push_back(ids.Get(i).As<Napi::Number>().Int32Value());
      if (o.Get("stopIds").IsArray()) {
        Napi::Array s = o.Get("stopIds").As<Napi::Array>();
        for (uint32_t i = 0; i < s.Length(); i++) r.stop_ids.push_back(s.Get(i).As<Napi::Number>().Int32Value());
      }
      sched_->add(std::move(r), Clock::now());
      return info.Env().Undefined();
    });
  }

  // -> { seqs: [{ id, start, count, sample, blocks, blockIds }], numTokens, events }
  Napi::Value Schedule(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return js_guard(env, [&]() -> Napi::Value {
      std::vector<Event> events;
      last_ = sched_->schedule(events, Clock::now());
      Napi::Object r = Napi::Object::New(env);
      Napi::Array seqs = Napi::Array::New(env, last_.seqs.size());
      for (size_t i = 0; i < last_.seqs.size(); i++) {
        const ScheduledSeq& s = last_.seqs[i];
        Napi::Object o = Napi::Object::New(env);
        o.Set("id", Napi::Number::New(env, (double)s.seq->req.id));
        o.Set("start", Napi::Number::New(env, (double)s.start));
        o.Set("count", Napi::Number::New(env, (double)s.count));
        o.Set("sample", Napi::Boolean::New(env, s.sample));
        Napi::Array dr = Napi::Array::New(env, s.seq->draft.size());
        for (size_t j = 0; j < s.seq->draft.size(); j++) dr.Set(j, Napi::Number::New(env, s.seq->draft[j]));
        o.Set("draft", dr);
        o.Set("blocks", Napi::Number::New(env, (double)s.seq->blocks.size()));
        Napi::Array ids = Napi::Array::New(env, s.seq->blocks.size());
        for (size_t j = 0; j < s.seq->blocks.size(); j++) ids.Set(j, Napi::Number::New(env, s.seq->blocks[j]));
        o.Set("blockIds", ids);
        seqs.Set(i, o);
      }
      r.Set("seqs", seqs);
      r.Set("numTokens", Napi::Number::New(env, (double)last_.num_tokens));
      r.Set("events", events_to_js(env, events));
      return r;
    });
  }

  // update(sampled: number[]) -> events (per scheduled seq with sample = true, in order: one token, or 1 + its
  // draft's length for a speculative one)
  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return js_guard(env, [&]() -> Napi::Value {
      std::vector<int32_t> sampled;
      Napi::Array a = info[0].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) sampled.push_back(a.Get(i).As<Napi::Number>().Int32Value());
      size_t want = 0;
      for (const auto& s : last_.seqs) want += (size_t)s.rows();
      if (sampled.size() != want) fail(ErrorCode::InvalidArgument, "update: expected " + std::to_string(want) + " tokens");
      std::vector<Event> events;
      sched_->update(last_, sampled, nullptr, events, Clock::now());
      last_ = SchedulerOutput();
      return events_to_js(env, events);
    });
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    std::vector<Event> events;
    sched_->cancel(info[0].As<Napi::Number>().Int64Value(), events, Clock::now());
    return events_to_js(info.Env(), events);
  }

  Napi::Value EndSession(const Napi::CallbackInfo& info) {
    sched_->end_session(info[0].As<Napi::Number>().Int64Value());
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("running", Napi::Number::New(env, (double)sched_->running()));
    o.Set("waiting", Napi::Number::New(env, (double)sched_->waiting()));
    o.Set("sessions", Napi::Number::New(env, (double)sched_->sessions()));
    o.Set("specDraftTokens", Napi::Number::New(env, (double)sched_->spec_draft_tokens()));
    o.Set("specAcceptedTokens", Napi::Number::New(env, (double)sched_->spec_accepted_tokens()));
    o.Set("blocksFree", Napi::Number::New(env, (double)blocks_->free_count()));
    o.Set("blocksTotal", Napi::Number::New(env, (double)blocks_->total()));
    o.Set("cachedBlocks", Napi::Number::New(env, (double)blocks_->cached_blocks()));
    return o;
  }

 private:
  std::unique_ptr<BlockAllocator> blocks_;
  std::unique_ptr<Scheduler> sched_;
  SchedulerOutput last_;
};

Napi::FunctionReference SchedulerHarness::constructor;

}  // namespace

void init_scheduler_harness(Napi::Env env, Napi::Object exports) {
  Napi::Function f = SchedulerHarness::DefineClass(
      env, "SchedulerHarness",
      {SchedulerHarness::InstanceMethod("add", &SchedulerHarness::Add),
       SchedulerHarness::InstanceMethod("schedule", &SchedulerHarness::Schedule),
       SchedulerHarness::InstanceMethod("update", &SchedulerHarness::Update),
       SchedulerHarness::InstanceMethod("cancel", &SchedulerHarness::Cancel),
       SchedulerHarness::InstanceMethod("endSession", &SchedulerHarness::EndSession),
       SchedulerHarness::InstanceMethod("stats", &SchedulerHarness::Stats)});
  SchedulerHarness::constructor = Napi::Persistent(f);
  SchedulerHarness::constructor.SuppressDestruct();
  exports.Set("createSchedulerHarness", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return SchedulerHarness::constructor.New({info.Length() > 0 ? info[0] : info.Env().Undefined()});
  }, "createSchedulerHarness"));
}

}  // namespace lmfleet
