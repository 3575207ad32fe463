/*
 * The shard's timer wheel: a hierarchical timing wheel with no clock and no
 * allocation (DESIGN.md section 4). Time is passed in as monotonic
 * nanoseconds; the shard loop advances the wheel after each wait and sleeps
 * until rp_timer_wheel_next_deadline.
 *
 * Shape: RP_TIMER_LEVELS levels of RP_TIMER_SLOTS slots over a tick of
 * RP_TIMER_TICK_NS. 64 slots make a level's occupancy one uint64_t, so the
 * next occupied slot is one count-trailing-zeros per level and a sleep of any
 * length is skipped in a handful of steps. Slot widths are 1 ms, 64 ms,
 * 4.1 s and 262 s, so the wheel spans an aligned rotation of 2^24 ms
 * (4.66 h): every datapath timeout (handshakes, keepalives, idle
 * connections, DHT queries) lands in it, while the few hours-long ones
 * (record expiry, republish), and deadlines past the end of the current
 * rotation, wait in an overflow list. That list is walked when the wheel
 * reaches the rotation of its earliest deadline: at most once per 4.66 h,
 * and never while it is empty. Inside the wheel a timer moves down at most
 * three times before it fires. The wheel is 4 KiB, embedded in the shard.
 *
 * Placement is by the highest base-64 digit in which a timer's tick differs
 * from the wheel's current tick, so every occupied slot lies ahead of the
 * current one and no level ever wraps. Firing is exact to the nanosecond: a
 * timer fires on the first advance whose `now` is at or past its deadline,
 * never earlier, whatever the tick.
 *
 * The wheel and its timers belong to one thread (the shard's) and none of
 * this is synchronised. Timers are intrusive: a timer points into the wheel
 * and the wheel into its timers, so neither may be moved or copied (nor a
 * timer's memory reused) while it is armed. The fields are private: use the
 * functions.
 */
#ifndef RP_RUNTIME_TIMER_H
#define RP_RUNTIME_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wheel resolution: a slot of the bottom level. Firing is still exact in ns. */
#define RP_TIMER_TICK_NS UINT64_C(1000000)
/* log2 of the slots per level: one uint64_t of occupancy bits per level. */
#define RP_TIMER_SLOT_BITS 6
#define RP_TIMER_SLOTS     (1u << RP_TIMER_SLOT_BITS)
#define RP_TIMER_LEVELS    4
/* Ticks the wheel spans; later deadlines wait in the overflow list. */
#define RP_TIMER_SPAN_TICKS (UINT64_C(1) << (RP_TIMER_SLOT_BITS * RP_TIMER_LEVELS))

typedef struct rp_timer rp_timer;
typedef struct rp_timer_wheel rp_timer_wheel;

/*
 * Called once when the timer fires, with the timer already disarmed, so the
 * callback may re-arm it, arm, re-arm or cancel any other timer, or free the
 * object the timer is embedded in (the wheel does not touch `t` after the
 * call). It must not call rp_timer_wheel_advance.
 */
typedef void (*rp_timer_fn)(rp_timer *t, void *arg);

struct rp_timer {
    rp_timer *next;
    rp_timer **pprev; /* the link pointing at this timer; NULL when not armed */
    rp_timer_wheel *wheel;
    uint64_t deadline; /* ns */
    uint64_t seq;      /* arm order: breaks ties between equal deadlines */
    rp_timer_fn fn;
    void *arg;
    uint8_t where; /* level, or one of the list codes in timer.c */
    uint8_t slot;
};

/* Diagnostic counters, only ever increased: they tell tests what advance cost. */
typedef struct rp_timer_wheel_stats {
    uint64_t slots_visited; /* occupied slots (and overflow walks) advance took on */
    uint64_t moved;         /* timers moved down a level or out of the overflow */
    uint64_t fired;         /* callbacks run */
} rp_timer_wheel_stats;

struct rp_timer_wheel {
    uint64_t now;  /* ns of the last advance (or init) */
    uint64_t tick; /* current tick: every slot before it has been emptied */
    uint64_t seq;
    size_t count;
    uint64_t occupied[RP_TIMER_LEVELS];
    rp_timer *slots[RP_TIMER_LEVELS][RP_TIMER_SLOTS];
    /*
     * Earliest deadline put in each slot since it was last emptied or scanned:
     * exact until that timer is cancelled or moved, a lower bound after.
     */
    uint64_t slot_min[RP_TIMER_LEVELS][RP_TIMER_SLOTS];
    rp_timer *overflow;
    uint64_t overflow_min; /* same rule as slot_min */
    rp_timer *due;         /* during advance: expired timers not yet fired, in order */
    bool firing;
    rp_timer_wheel_stats stats;
};

/* Starts an empty wheel at `now_ns`. No allocation; nothing to free. */
void rp_timer_wheel_init(rp_timer_wheel *w, uint64_t now_ns);

/* Prepares a timer (not armed) to call fn(t, arg). Do not call it on an armed timer. */
void rp_timer_init(rp_timer *t, rp_timer_fn fn, void *arg);

/*
 * Arms `t` to fire at the first advance with now >= deadline_ns. An armed
 * timer is moved (also from another wheel), and counts as armed last for
 * ordering. A deadline at or before the wheel's last `now` fires on the next
 * advance, never inside the advance that is running. O(1).
 */
void rp_timer_arm(rp_timer_wheel *w, rp_timer *t, uint64_t deadline_ns);

/* Disarms `t`; a no-op if it is not armed. Safe from any callback, on any timer. O(1). */
void rp_timer_cancel(rp_timer *t);

/* Armed and not yet fired (a timer is no longer armed inside its own callback). */
bool rp_timer_armed(const rp_timer *t);

/* The deadline `t` was last armed with (0 if never). */
uint64_t rp_timer_deadline(const rp_timer *t);

/*
 * Moves the wheel to `now_ns` and fires every timer armed with a deadline <=
 * now_ns when the call began, in deadline order (ties in arm order); timers
 * cancelled or re-armed by an earlier callback of the same call do not fire.
 * A `now_ns` before the last one is taken as the last one. Returns the number
 * of callbacks run. Costs O(occupied slots passed + timers moved or fired),
 * plus sorting each expiring 1 ms slot by deadline and a scan of the current
 * 1 ms slot when it holds a deadline that may be due; an empty stretch of
 * any length is crossed in at most RP_TIMER_LEVELS + 1 bitmap lookups.
 * Must not be called from a timer callback.
 */
size_t rp_timer_wheel_advance(rp_timer_wheel *w, uint64_t now_ns);

/*
 * Earliest pending deadline in ns, UINT64_MAX if nothing is armed. Exact
 * (to the ns, not the tick) unless the earliest timer of the next occupied
 * slot was cancelled or moved since that slot was last filled or scanned:
 * then it is a lower bound (that timer's deadline), never later than the
 * true one, corrected by the advance that reaches it (one early wakeup).
 * After advance(now), it is > now unless a deadline <= now has been armed
 * since that advance began (then the next advance is due at once, and it
 * rescans), so a loop that sleeps until it never spins. O(RP_TIMER_LEVELS).
 */
uint64_t rp_timer_wheel_next_deadline(const rp_timer_wheel *w);

/*
 * How long the loop may sleep from now_ns: 0 if a timer is due,
 * UINT64_MAX if nothing is armed (or only deadlines of UINT64_MAX), else
 * next_deadline - now_ns.
 */
uint64_t rp_timer_wheel_timeout_ns(const rp_timer_wheel *w, uint64_t now_ns);

/* Armed timers, including expired ones not yet fired by a running advance. */
size_t rp_timer_wheel_count(const rp_timer_wheel *w);

#endif
