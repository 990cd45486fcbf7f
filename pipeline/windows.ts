/**
 * Window definitions by event time. Every window has a grace period: a record whose windows
 * have all closed (window end + grace <= stream time) is late, is not added, and goes to the
 * late topic with the reason.
 */

/** Fixed-size windows; tumbling when `advance` equals `size`, hopping when smaller. */
export interface TimeWindowSpec {
  readonly kind: "time";
  readonly size: number;
  readonly advance: number;
  readonly grace: number;
}

/** A window of `size` ending at every record: covers any span of that size. */
export interface SlidingWindowSpec {
  readonly kind: "sliding";
  readonly size: number;
  readonly grace: number;
}

/** Sessions of activity separated by at least `gap` of inactivity. */
export interface SessionWindowSpec {
  readonly kind: "session";
  readonly gap: number;
  readonly grace: number;
}

/** Stream–stream join window: records join when their times differ by at most `before`/`after`. */
export interface JoinWindowSpec {
  readonly kind: "join";
  readonly before: number;
  readonly after: number;
  readonly grace: number;
}

function checkDuration(what: string, ms: number, allowZero = true): number {
  if (!Number.isFinite(ms) || ms < 0 || (!allowZero && ms === 0)) {
    throw new RangeError(
      `Cannot define window as '${what}' must be a ${
        allowZero ? "non-negative" : "positive"
      } number of milliseconds: current value is ${ms}`,
    );
  }
  return ms;
}

class TimeWindowsSpec implements TimeWindowSpec {
  readonly kind = "time";
  constructor(readonly size: number, readonly advance: number, readonly grace: number) {}
  /** Makes hopping windows that start every `advance` ms. */
  advanceBy(advance: number): TimeWindowsSpec {
    checkDuration("advance", advance, false);
    if (advance > this.size) {
      throw new RangeError(
        `Cannot define window as 'advance' must be <= size (${this.size}): current value is ${advance}`,
      );
    }
    return new TimeWindowsSpec(this.size, advance, this.grace);
  }
}

/** Tumbling (and, with `advanceBy`, hopping) windows, as Kafka Streams' `TimeWindows`. */
export const TimeWindows = {
  ofSizeAndGrace(size: number, grace: number): TimeWindowsSpec {
    return new TimeWindowsSpec(
      checkDuration("size", size, false),
      size,
      checkDuration("grace", grace),
    );
  },
  ofSizeWithNoGrace(size: number): TimeWindowsSpec {
    return TimeWindows.ofSizeAndGrace(size, 0);
  },
};

/** Sliding windows, as Kafka Streams' `SlidingWindows`. */
export const SlidingWindows = {
  ofTimeDifferenceAndGrace(size: number, grace: number): SlidingWindowSpec {
    return {
      kind: "sliding",
      size: checkDuration("size", size, false),
      grace: checkDuration("grace", grace),
    };
  },
  ofTimeDifferenceWithNoGrace(size: number): SlidingWindowSpec {
    return SlidingWindows.ofTimeDifferenceAndGrace(size, 0);
  },
};

/** Session windows, as Kafka Streams' `SessionWindows`. */
export const SessionWindows = {
  ofInactivityGapAndGrace(gap: number, grace: number): SessionWindowSpec {
    return {
      kind: "session",
      gap: checkDuration("gap", gap, false),
      grace: checkDuration("grace", grace),
    };
  },
  ofInactivityGapWithNoGrace(gap: number): SessionWindowSpec {
    return SessionWindows.ofInactivityGapAndGrace(gap, 0);
  },
};

/** Join windows, as Kafka Streams' `JoinWindows`. */
export const JoinWindows = {
  ofTimeDifferenceAndGrace(difference: number, grace: number): JoinWindowSpec {
    checkDuration("difference", difference);
    return {
      kind: "join",
      before: difference,
      after: difference,
      grace: checkDuration("grace", grace),
    };
  },
  ofTimeDifferenceWithNoGrace(difference: number): JoinWindowSpec {
    return JoinWindows.ofTimeDifferenceAndGrace(difference, 0);
  },
};

/**
 * Starts of the tumbling or hopping windows [start, start + size) holding `timestamp` that are
 * still open at `streamTime` (start + size + grace > streamTime), ascending; none: the record
 * is late. Starts are multiples of `advance` (epoch-aligned).
 */
export function openTimeWindows(
  timestamp: number,
  spec: TimeWindowSpec,
  streamTime: number,
): number[] {
  const { size, advance, grace } = spec;
  const lastStart = Math.floor(timestamp / advance) * advance;
  const starts: number[] = [];
  // The earliest start s with s > timestamp - size.
  const first = lastStart - (Math.ceil((lastStart - timestamp + size) / advance) - 1) * advance;
  for (let s = first; s <= lastStart; s += advance) {
    if (s + size + grace > streamTime) starts.push(s);
  }
  return starts;
}
