// `PassTrigger`: when the next scheduling pass runs. One definition for the daemon's loop
// (scheduler/server/service.cpp, on its timer) and `gsched-sim`'s (sim/simulation.cpp, on virtual
// time), so the simulator replays the daemon's timing rather than a copy of it.
//
// The rule: every change that may let a job start (a submit, an exit, a node change, the periodic
// tick) asks for a pass. Requests are coalesced: the pass runs `coalesce` after the request that
// found no pass scheduled, and at least `min_gap` after the previous pass ended, so that a stream
// of submissions costs a few passes per second rather than one snapshot per submission. Requests
// that arrive while a pass runs are not lost: they schedule the next pass when it ends. At most one
// pass runs at a time, and at most one wake-up is scheduled.
//
// The trigger decides; its owner waits. `Request` and `End` return the time of a new wake-up to
// arrange (the daemon arms a timer, the simulator advances its clock to it); when that time comes
// the owner calls `Begin`, runs the pass, then `End`.
//
// Invariants: `due()` is set only while a pass is wanted and none runs; `running()` between a
// `Begin` that returned true and the next `End`.
// Threading: not thread-safe; one owner (the daemon's state thread, the simulator's loop). Reads
// the injected clock, which must outlive the trigger and never go back.
#pragma once

#include <optional>

#include "scheduler/common/clock.h"

namespace gsched {

class PassTrigger {
 public:
  PassTrigger(const Clock& clock, Duration coalesce, Duration min_gap)
      : clock_(clock), coalesce_(coalesce), min_gap_(min_gap) {}

  // A change arrived now: a pass is wanted. Returns when it is due if a wake-up must be arranged
  // for it; nothing when one is already scheduled or a pass runs (its `End` schedules the next).
  [[nodiscard]] std::optional<Timestamp> Request();

  // The wake-up came. Starts a pass (true) when one is wanted and none runs; the owner then runs
  // it and calls `End`. False: nothing to do (the wake-up is spent either way).
  [[nodiscard]] bool Begin();

  // The wake-up came but the pass cannot run now (the daemon while its store refuses writes): the
  // request stays, and the next `Request` schedules a wake-up again.
  void Defer();

  // The pass that `Begin` started ended now. Returns when the next one is due if requests arrived
  // while it ran.
  [[nodiscard]] std::optional<Timestamp> End();

  // A pass is wanted (requested and not yet begun).
  bool wanted() const { return wanted_; }
  bool running() const { return running_; }
  // When the scheduled wake-up is due; nothing when none is scheduled.
  std::optional<Timestamp> due() const { return due_; }
  // A wake-up is scheduled and its time has come.
  bool IsDue() const { return due_ && clock_.Now() >= *due_; }
  // When the last pass ended; nothing before the first.
  std::optional<Timestamp> last_end() const { return last_end_; }

 private:
  Timestamp Schedule();

  const Clock& clock_;
  Duration coalesce_;
  Duration min_gap_;
  bool wanted_ = false;
  bool running_ = false;
  std::optional<Timestamp> due_;
  std::optional<Timestamp> last_end_;
};

}  // namespace gsched
