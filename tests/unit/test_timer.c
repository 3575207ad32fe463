#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/timer.h"

#define MS(x)  ((int64_t)(x)*1000000)
#define SEC(x) (MS(x) * 1000)
#define HR(x)  (SEC(x) * 3600)
#define DAY(x) (HR(x) * 24)
/* The first tick past the wheel's span, in ns. */
#define SPAN_NS ((int64_t)RP_TIMER_SPAN_TICKS * MS(1))

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n)
{
    return n == 0 ? 0 : splitmix64(s) % n;
}

static uint64_t add_sat(uint64_t base, int64_t off)
{
    if (off < 0) return (uint64_t)-off > base ? 0 : base - (uint64_t)-off;
    return (uint64_t)off > UINT64_MAX - base ? UINT64_MAX : base + (uint64_t)off;
}

/* ---- a wheel whose timers log their id when they fire ---------------------------------------- */

#define REC_MAX 64

typedef struct rec rec;
typedef struct rec_timer {
    rp_timer t;
    int id;
    rec *r;
} rec_timer;

struct rec {
    rp_timer_wheel w;
    rec_timer tm[REC_MAX];
    int log[4 * REC_MAX];
    size_t n;
};

static void rec_fire(rp_timer *t, void *arg)
{
    rec_timer *rt = arg;
    rec *r = rt->r;
    cr_assert_eq(t, &rt->t);
    cr_assert(!rp_timer_armed(t), "a timer is disarmed inside its own callback");
    cr_assert_leq(rp_timer_deadline(t), r->w.now, "timer %d fired before its deadline", rt->id);
    cr_assert_lt(r->n, ARRAY_LEN(r->log));
    r->log[r->n++] = rt->id;
}

static void rec_init(rec *r, uint64_t now)
{
    memset(r, 0, sizeof(*r));
    rp_timer_wheel_init(&r->w, now);
    for (int i = 0; i < REC_MAX; i++) {
        r->tm[i].id = i;
        r->tm[i].r = r;
        rp_timer_init(&r->tm[i].t, rec_fire, &r->tm[i]);
    }
}

/* ---- ordering across every level and the overflow -------------------------------------------- */

/* Offsets from the start, armed in this (scrambled) order: each level's edges, ties, the past. */
static const int64_t order_offsets[] = {
    HR(5),
    -MS(5),
    MS(64),
    1,
    MS(262144),
    0,
    MS(1) + MS(1) / 2,
    DAY(10),
    MS(63),
    -1,
    HR(30),
    MS(4096),
    MS(1) + MS(1) / 2, /* tie with the earlier one: fires after it */
    MS(1) - 1,
    MS(1),
    MS(65),
    MS(4095),
    SEC(100),
    MS(262143),
    HR(1),
    SPAN_NS - MS(1),
    SPAN_NS,
    SPAN_NS + 1,
    2 * SPAN_NS,
    MS(1), /* tie */
    MS(262144) + 1,
    DAY(3) + 17,
};

/* Starts that put the same offsets across digit and rotation boundaries. */
static const uint64_t order_bases[] = {
    0,
    (uint64_t)MS(64) - 1,
    (uint64_t)MS(4095),
    (uint64_t)(SPAN_NS - MS(1)),
    (uint64_t)SPAN_NS - 1,
    UINT64_C(1234567890123456789),
    (UINT64_C(1) << 62) + 12345,
};

typedef struct order_run {
    rec r;
    size_t n;
    int expected[ARRAY_LEN(order_offsets)]; /* ids in firing order */
    uint64_t deadline[ARRAY_LEN(order_offsets)];
    uint64_t eff_now;
    size_t fired;
} order_run;

static void order_setup(order_run *o, uint64_t base)
{
    rec_init(&o->r, base);
    o->n = ARRAY_LEN(order_offsets);
    o->eff_now = base;
    o->fired = 0;
    for (size_t i = 0; i < o->n; i++) {
        o->deadline[i] = add_sat(base, order_offsets[i]);
        rp_timer_arm(&o->r.w, &o->r.tm[i].t, o->deadline[i]);
        o->expected[i] = (int)i;
    }
    /* Insertion sort by (deadline, arm order): stable, so ids already in arm order stay so. */
    for (size_t i = 1; i < o->n; i++) {
        int v = o->expected[i];
        size_t j = i;
        while (j > 0 && o->deadline[o->expected[j - 1]] > o->deadline[v]) {
            o->expected[j] = o->expected[j - 1];
            j--;
        }
        o->expected[j] = v;
    }
    cr_assert_eq(rp_timer_wheel_count(&o->r.w), o->n);
}

/* Advances and checks: fired == exactly those with deadline <= now, in order; next_deadline exact.
 */
static void order_step(order_run *o, uint64_t now)
{
    size_t got = rp_timer_wheel_advance(&o->r.w, now);
    if (now > o->eff_now) o->eff_now = now;
    size_t k = 0;
    while (k < o->n && o->deadline[o->expected[k]] <= o->eff_now) k++;
    cr_assert_eq(got, k - o->fired, "advance to %lu fired %zu, want %zu", (unsigned long)now, got,
                 k - o->fired);
    cr_assert_eq(o->r.n, k);
    for (size_t i = 0; i < k; i++)
        cr_assert_eq(o->r.log[i], o->expected[i], "fire #%zu: got id %d, want %d", i, o->r.log[i],
                     o->expected[i]);
    o->fired = k;
    cr_assert_eq(rp_timer_wheel_count(&o->r.w), o->n - k);
    uint64_t want = k < o->n ? o->deadline[o->expected[k]] : UINT64_MAX;
    cr_assert_eq(rp_timer_wheel_next_deadline(&o->r.w), want, "next_deadline after %lu",
                 (unsigned long)now);
}

Test(timer, order_one_jump_over_everything)
{
    for (size_t b = 0; b < ARRAY_LEN(order_bases); b++) {
        order_run o;
        order_setup(&o, order_bases[b]);
        order_step(&o, add_sat(order_bases[b], DAY(11)));
        cr_assert_eq(o.fired, o.n, "base %zu", b);
    }
}

Test(timer, order_stepping_to_each_deadline_and_one_ns_before)
{
    for (size_t b = 0; b < ARRAY_LEN(order_bases); b++) {
        order_run o;
        order_setup(&o, order_bases[b]);
        for (size_t i = 0; i < o.n; i++) {
            uint64_t d = o.deadline[o.expected[i]];
            if (d > 0) order_step(&o, d - 1);
            order_step(&o, d);
        }
        cr_assert_eq(o.fired, o.n, "base %zu", b);
    }
}

Test(timer, order_geometric_steps)
{
    for (size_t b = 0; b < ARRAY_LEN(order_bases); b++) {
        order_run o;
        order_setup(&o, order_bases[b]);
        uint64_t now = order_bases[b], delta = 1;
        while (o.fired < o.n) {
            now = add_sat(now, (int64_t)delta);
            delta = delta * 3 + 7;
            order_step(&o, now);
        }
    }
}

Test(timer, fires_to_the_ns_not_the_tick)
{
    rec r;
    rec_init(&r, 0);
    rp_timer_arm(&r.w, &r.tm[0].t, (uint64_t)(MS(1) + MS(1) / 2));
    cr_assert_eq(rp_timer_wheel_advance(&r.w, (uint64_t)MS(1)), 0);
    cr_assert_eq(rp_timer_wheel_next_deadline(&r.w), (uint64_t)(MS(1) + MS(1) / 2));
    cr_assert_eq(rp_timer_wheel_advance(&r.w, (uint64_t)(MS(1) + MS(1) / 2) - 1), 0);
    cr_assert_eq(rp_timer_wheel_timeout_ns(&r.w, (uint64_t)(MS(1) + MS(1) / 2) - 1), 1);
    cr_assert_eq(rp_timer_wheel_advance(&r.w, (uint64_t)(MS(1) + MS(1) / 2)), 1);
    cr_assert_eq(r.n, 1);
}

/* ---- cancel and re-arm ------------------------------------------------------------------------
 */

/* One offset per level, the overflow and the past. */
static const int64_t level_offsets[] = {
    -MS(3), 0, MS(1) / 2, MS(10), SEC(1), SEC(100), HR(2), HR(30), DAY(40),
};

Test(timer, cancel_before_fire_at_every_level)
{
    const uint64_t base = (uint64_t)HR(7) + 123;
    for (size_t i = 0; i < ARRAY_LEN(level_offsets); i++) {
        for (int when = 0; when < 2; when++) { /* 0: at once, 1: after an advance that misses it */
            rec r;
            rec_init(&r, base);
            uint64_t d = add_sat(base, level_offsets[i]);
            rp_timer_arm(&r.w, &r.tm[0].t, d);
            rp_timer_arm(&r.w, &r.tm[1].t, d + 1); /* a neighbour that must survive */
            cr_assert(rp_timer_armed(&r.tm[0].t));
            if (when == 1 && d > base) {
                uint64_t mid = base + (d - base) / 2;
                cr_assert_eq(rp_timer_wheel_advance(&r.w, mid), 0);
            }
            rp_timer_cancel(&r.tm[0].t);
            cr_assert(!rp_timer_armed(&r.tm[0].t), "offset %zu", i);
            cr_assert_eq(rp_timer_wheel_count(&r.w), 1);
            cr_assert_leq(rp_timer_wheel_next_deadline(&r.w), d + 1);
            cr_assert_eq(rp_timer_wheel_advance(&r.w, add_sat(d, DAY(50))), 1);
            cr_assert_eq(r.n, 1);
            cr_assert_eq(r.log[0], 1, "the cancelled timer fired (offset %zu)", i);
            cr_assert_eq(rp_timer_wheel_count(&r.w), 0);
            cr_assert_eq(rp_timer_wheel_next_deadline(&r.w), UINT64_MAX);
        }
    }
}

Test(timer, cancel_unarmed_fired_and_twice_are_noops)
{
    rec r;
    rec_init(&r, 0);
    rp_timer_cancel(&r.tm[0].t); /* never armed */
    cr_assert(!rp_timer_armed(&r.tm[0].t));
    cr_assert_eq(rp_timer_wheel_count(&r.w), 0);

    rp_timer_arm(&r.w, &r.tm[0].t, (uint64_t)MS(5));
    rp_timer_arm(&r.w, &r.tm[1].t, (uint64_t)MS(50));
    cr_assert_eq(rp_timer_wheel_advance(&r.w, (uint64_t)MS(5)), 1);
    rp_timer_cancel(&r.tm[0].t); /* already fired */
    cr_assert_eq(rp_timer_wheel_count(&r.w), 1);
    rp_timer_cancel(&r.tm[1].t);
    rp_timer_cancel(&r.tm[1].t);
    cr_assert_eq(rp_timer_wheel_count(&r.w), 0);
    cr_assert_eq(rp_timer_wheel_advance(&r.w, (uint64_t)SEC(1)), 0);
    cr_assert_eq(r.n, 1);
}

Test(timer, cancelled_minimum_leaves_a_lower_bound_that_heals)
{
    rec r;
    rec_init(&r, 0);
    /* Same 4.1 s slot of level 2. */
    rp_timer_arm(&r.w, &r.tm[0].t, (uint64_t)SEC(10));
    rp_timer_arm(&r.w, &r.tm[1].t, (uint64_t)SEC(11));
    cr_assert_eq(rp_timer_wheel_next_deadline(&r.w), (uint64_t)SEC(10));
    rp_timer_cancel(&r.tm[0].t);
    uint64_t nd = rp_timer_wheel_next_deadline(&r.w);
    cr_assert_leq(nd, (uint64_t)SEC(11), "never later than the true earliest");
    cr_assert_eq(rp_timer_wheel_advance(&r.w, nd), 0, "the early wakeup fires nothing");
    cr_assert_eq(rp_timer_wheel_next_deadline(&r.w), (uint64_t)SEC(11), "and makes it exact");
    cr_assert_eq(rp_timer_wheel_advance(&r.w, (uint64_t)SEC(11)), 1);
}

static const struct {
    int64_t first, second;
} rearm_cases[] = {
    { MS(100), MS(10) },    { MS(10), MS(100) },    { HR(30), MS(1) },          { MS(1), HR(30) },
    { SEC(1), SEC(1) + 1 }, { SEC(1) + 1, SEC(1) }, { SEC(5), SEC(5) },         { -MS(1), SEC(2) },
    { SEC(2), -MS(1) },     { DAY(3), DAY(2) },     { SEC(300), SEC(300) - 1 },
};

Test(timer, rearm_moves)
{
    const uint64_t base = (uint64_t)SEC(1000);
    for (size_t i = 0; i < ARRAY_LEN(rearm_cases); i++) {
        rec r;
        rec_init(&r, base);
        uint64_t d1 = add_sat(base, rearm_cases[i].first);
        uint64_t d2 = add_sat(base, rearm_cases[i].second);
        rp_timer_arm(&r.w, &r.tm[0].t, d1);
        rp_timer_arm(&r.w, &r.tm[0].t, d2);
        cr_assert_eq(rp_timer_wheel_count(&r.w), 1, "case %zu", i);
        cr_assert_eq(rp_timer_deadline(&r.tm[0].t), d2);
        cr_assert_eq(rp_timer_wheel_next_deadline(&r.w), d2, "case %zu", i);
        if (d2 > base) cr_assert_eq(rp_timer_wheel_advance(&r.w, d2 - 1), 0, "case %zu", i);
        cr_assert_eq(rp_timer_wheel_advance(&r.w, d2), 1, "case %zu", i);
        cr_assert_eq(rp_timer_wheel_advance(&r.w, add_sat(base, DAY(5))), 0, "case %zu", i);
        cr_assert_eq(r.n, 1);
        cr_assert_eq(rp_timer_wheel_count(&r.w), 0);
    }
}

Test(timer, rearm_onto_another_wheel_moves_it)
{
    rec a, b;
    rec_init(&a, 0);
    rec_init(&b, 0);
    rp_timer_arm(&a.w, &a.tm[0].t, (uint64_t)MS(10));
    rp_timer_arm(&b.w, &a.tm[0].t, (uint64_t)MS(20));
    cr_assert_eq(rp_timer_wheel_count(&a.w), 0);
    cr_assert_eq(rp_timer_wheel_count(&b.w), 1);
    cr_assert_eq(rp_timer_wheel_advance(&a.w, (uint64_t)SEC(1)), 0);
    cr_assert_eq(rp_timer_wheel_advance(&b.w, (uint64_t)SEC(1)), 1);
    cr_assert_eq(a.n, 1, "the callback logs into the record it was initialised with");
}

/* ---- callbacks that arm and cancel during advance ----------------------------------------------
 */

enum { A, B, C, D };
enum act_kind { ACT_NONE, ACT_CANCEL, ACT_ARM };

typedef struct act {
    int actor;
    enum act_kind kind;
    int target;
    int64_t ms;
} act;

/* A, B, C armed at 10, 20, 30 ms; D not armed. advance(50 ms), then advance(1 s). */
static const struct {
    const char *name;
    act acts[2];
    const char *first, *second;
} cb_cases[] = {
    { "cancel a later due timer", { { A, ACT_CANCEL, B, 0 } }, "AC", "" },
    { "cancel every later due timer",
      { { A, ACT_CANCEL, B, 0 }, { A, ACT_CANCEL, C, 0 } },
      "A",
      "" },
    { "re-arm a due timer, still <= now", { { A, ACT_ARM, B, 40 } }, "AC", "B" },
    { "re-arm a due timer later", { { A, ACT_ARM, B, 100 } }, "AC", "B" },
    { "re-arm a due timer earlier", { { A, ACT_ARM, C, 5 } }, "AB", "C" },
    { "re-arm a due timer to its own deadline", { { A, ACT_ARM, B, 20 } }, "AC", "B" },
    { "re-arm self into the past", { { A, ACT_ARM, A, 5 } }, "ABC", "A" },
    { "re-arm self later", { { B, ACT_ARM, B, 200 } }, "ABC", "B" },
    { "arm a new timer in the past", { { A, ACT_ARM, D, 15 } }, "ABC", "D" },
    { "arm a new timer later", { { C, ACT_ARM, D, 500 } }, "ABC", "D" },
    { "cancel self", { { A, ACT_CANCEL, A, 0 } }, "ABC", "" },
    { "cancel one already fired", { { C, ACT_CANCEL, A, 0 } }, "ABC", "" },
    { "cancel then re-arm", { { A, ACT_CANCEL, B, 0 }, { A, ACT_ARM, B, 30 } }, "AC", "B" },
    { "ties fire in arm order", { { A, ACT_ARM, C, 20 }, { A, ACT_ARM, D, 20 } }, "AB", "CD" },
    { "ties fire in arm order, reversed",
      { { A, ACT_ARM, D, 20 }, { A, ACT_ARM, C, 20 } },
      "AB",
      "DC" },
    { "last fired arms the first again", { { C, ACT_ARM, A, 60 } }, "ABC", "A" },
};

typedef struct cb_run cb_run;

typedef struct cb_timer {
    rp_timer t;
    int id;
    cb_run *run;
} cb_timer;

struct cb_run {
    rp_timer_wheel w;
    cb_timer tm[4];
    const act *acts;
    size_t nacts;
    bool acted[4];
    char log[16];
    size_t n;
};

static void cb_fire(rp_timer *t, void *arg)
{
    cb_timer *ct = arg;
    cb_run *run = ct->run;
    cr_assert_eq(t, &ct->t);
    cr_assert_lt(run->n, sizeof(run->log) - 1);
    run->log[run->n++] = (char)('A' + ct->id);
    if (run->acted[ct->id]) return; /* act on the first firing only */
    run->acted[ct->id] = true;
    for (size_t i = 0; i < run->nacts; i++) {
        const act *a = &run->acts[i];
        if (a->actor != ct->id) continue;
        rp_timer *target = &run->tm[a->target].t;
        if (a->kind == ACT_CANCEL) rp_timer_cancel(target);
        if (a->kind == ACT_ARM) rp_timer_arm(&run->w, target, (uint64_t)MS(a->ms));
    }
}

Test(timer, callbacks_arm_and_cancel_during_advance)
{
    for (size_t c = 0; c < ARRAY_LEN(cb_cases); c++) {
        const char *name = cb_cases[c].name;
        cb_run run;
        memset(&run, 0, sizeof(run));
        rp_timer_wheel_init(&run.w, 0);
        run.acts = cb_cases[c].acts;
        run.nacts = ARRAY_LEN(cb_cases[c].acts);
        for (int i = 0; i < 4; i++) {
            run.tm[i].id = i;
            run.tm[i].run = &run;
            rp_timer_init(&run.tm[i].t, cb_fire, &run.tm[i]);
        }
        for (int i = A; i <= C; i++) rp_timer_arm(&run.w, &run.tm[i].t, (uint64_t)MS(10 * (i + 1)));

        size_t got = rp_timer_wheel_advance(&run.w, (uint64_t)MS(50));
        run.log[run.n] = '\0';
        cr_assert_str_eq(run.log, cb_cases[c].first, "%s: first advance", name);
        cr_assert_eq(got, strlen(cb_cases[c].first), "%s", name);
        cr_assert_eq(rp_timer_wheel_count(&run.w), strlen(cb_cases[c].second), "%s", name);
        /* Something armed into the past must stop the loop from sleeping. */
        uint64_t nd = rp_timer_wheel_next_deadline(&run.w);
        bool past_pending = false;
        for (int i = 0; i < 4; i++)
            if (rp_timer_armed(&run.tm[i].t) && rp_timer_deadline(&run.tm[i].t) <= MS(50))
                past_pending = true;
        cr_assert_eq(nd <= (uint64_t)MS(50), past_pending, "%s: next_deadline %lu", name,
                     (unsigned long)nd);

        size_t before = run.n;
        got = rp_timer_wheel_advance(&run.w, (uint64_t)SEC(1));
        run.log[run.n] = '\0';
        cr_assert_str_eq(run.log + before, cb_cases[c].second, "%s: second advance", name);
        cr_assert_eq(got, strlen(cb_cases[c].second), "%s", name);
        cr_assert_eq(rp_timer_wheel_count(&run.w), 0, "%s", name);
    }
}

/* Objects that own their timer and are freed from callbacks: ASan reports any later touch. */
typedef struct owned {
    rp_timer t;
    struct owned *victim; /* cancelled and freed by this one's callback */
    int *fired;
} owned;

static void owned_fire(rp_timer *t, void *arg)
{
    owned *o = arg;
    (*o->fired)++;
    if (o->victim != NULL) {
        rp_timer_cancel(&o->victim->t);
        free(o->victim);
    }
    free(o);
    (void)t;
}

Test(timer, callbacks_free_their_own_and_other_due_timers)
{
    rp_timer_wheel w;
    rp_timer_wheel_init(&w, 0);
    int fired = 0;
    owned *objs[6];
    for (int i = 0; i < 6; i++) {
        objs[i] = calloc(1, sizeof(owned));
        cr_assert_not_null(objs[i]);
        objs[i]->fired = &fired;
        rp_timer_init(&objs[i]->t, owned_fire, objs[i]);
    }
    /* 0 frees itself; 1 frees 2 (due later, same tick); 3 frees 4 (due later, another level). */
    objs[1]->victim = objs[2];
    objs[3]->victim = objs[4];
    rp_timer_arm(&w, &objs[0]->t, (uint64_t)MS(1));
    rp_timer_arm(&w, &objs[1]->t, (uint64_t)MS(2));
    rp_timer_arm(&w, &objs[2]->t, (uint64_t)MS(2) + 5);
    rp_timer_arm(&w, &objs[3]->t, (uint64_t)MS(3));
    rp_timer_arm(&w, &objs[4]->t, (uint64_t)SEC(100));
    rp_timer_arm(&w, &objs[5]->t, (uint64_t)SEC(100) + 1);
    cr_assert_eq(rp_timer_wheel_advance(&w, (uint64_t)SEC(200)), 4);
    cr_assert_eq(fired, 4);
    cr_assert_eq(rp_timer_wheel_count(&w), 0);
}

/* ---- large jumps cost what is armed, not the time crossed --------------------------------------
 */

Test(timer, empty_wheel_crosses_any_time_for_free)
{
    rp_timer_wheel w;
    rp_timer_wheel_init(&w, 12345);
    cr_assert_eq(rp_timer_wheel_advance(&w, (uint64_t)HR(10)), 0);
    uint64_t s = 7, now = (uint64_t)HR(10);
    for (int i = 0; i < 1000; i++) {
        now += below(&s, (uint64_t)DAY(1));
        cr_assert_eq(rp_timer_wheel_advance(&w, now), 0);
    }
    cr_assert_eq(w.stats.slots_visited, 0);
    cr_assert_eq(rp_timer_wheel_next_deadline(&w), UINT64_MAX);
    cr_assert_eq(rp_timer_wheel_timeout_ns(&w, now), UINT64_MAX);

    /* The wheel moved with the time: a short timer armed now lands straight in the bottom level. */
    rec r;
    rec_init(&r, 0);
    cr_assert_eq(rp_timer_wheel_advance(&r.w, now), 0);
    rp_timer_arm(&r.w, &r.tm[0].t, now + (uint64_t)MS(5));
    cr_assert_eq(rp_timer_wheel_advance(&r.w, now + (uint64_t)MS(5)), 1);
    cr_assert_eq(r.w.stats.moved, 0, "a 5 ms timer was cascaded");
    cr_assert_eq(r.w.stats.slots_visited, 1);
}

Test(timer, hours_long_jump_with_few_timers_visits_few_slots)
{
    rec r;
    rec_init(&r, 999);
    rp_timer_arm(&r.w, &r.tm[0].t, (uint64_t)HR(1));
    rp_timer_arm(&r.w, &r.tm[1].t, (uint64_t)HR(5));
    rp_timer_arm(&r.w, &r.tm[2].t, (uint64_t)DAY(3));
    cr_assert_eq(rp_timer_wheel_advance(&r.w, (uint64_t)DAY(4)), 3);
    cr_assert_eq(r.log[0], 0);
    cr_assert_eq(r.log[1], 1);
    cr_assert_eq(r.log[2], 2);
    /* Per timer: one slot per level it passes through plus the overflow walks (two here). */
    cr_assert_leq(r.w.stats.slots_visited, 3 * (RP_TIMER_LEVELS + 1), "visited %lu",
                  (unsigned long)r.w.stats.slots_visited);
    cr_assert_leq(r.w.stats.moved, 3 * (RP_TIMER_LEVELS + 1));
    cr_assert_gt(r.w.stats.moved, 0);
}

Test(timer, many_small_steps_toward_a_far_timer_visit_nothing)
{
    rec r;
    rec_init(&r, 0);
    rp_timer_arm(&r.w, &r.tm[0].t, (uint64_t)HR(2));
    for (uint64_t ms = 1; ms <= 10000; ms++) rp_timer_wheel_advance(&r.w, (uint64_t)MS(ms));
    cr_assert_eq(r.w.stats.slots_visited, 0);
    cr_assert_eq(rp_timer_wheel_next_deadline(&r.w), (uint64_t)HR(2));
}

/* The shard loop: sleep until next_deadline, advance. Exact deadlines mean no idle wakeups. */
Test(timer, sleeping_until_next_deadline_wakes_only_to_fire)
{
    rec r;
    rec_init(&r, 0);
    uint64_t s = 42;
    uint64_t deadlines[REC_MAX];
    for (int i = 0; i < REC_MAX; i++) {
        deadlines[i] = 1 + below(&s, (uint64_t)DAY(10));
        if (i % 8 == 7) deadlines[i] = deadlines[i - 1]; /* some ties */
        rp_timer_arm(&r.w, &r.tm[i].t, deadlines[i]);
    }
    size_t wakeups = 0, fired = 0;
    while (rp_timer_wheel_count(&r.w) > 0) {
        uint64_t nd = rp_timer_wheel_next_deadline(&r.w);
        size_t n = rp_timer_wheel_advance(&r.w, nd);
        cr_assert_gt(n, 0, "wakeup at %lu fired nothing", (unsigned long)nd);
        for (size_t i = fired; i < fired + n; i++)
            cr_assert_eq(deadlines[r.log[i]], nd, "fired at its deadline, not after");
        fired += n;
        wakeups++;
    }
    cr_assert_eq(fired, REC_MAX);
    cr_assert_leq(wakeups, REC_MAX - REC_MAX / 8);
    cr_assert_leq(r.w.stats.slots_visited, REC_MAX * (RP_TIMER_LEVELS + 2));
}

/* ---- edges
 * --------------------------------------------------------------------------------------- */

Test(timer, extreme_deadlines_and_time_going_backwards)
{
    rec r;
    rec_init(&r, (uint64_t)SEC(5));
    rp_timer_arm(&r.w, &r.tm[0].t, 0);
    rp_timer_arm(&r.w, &r.tm[1].t, UINT64_MAX);
    cr_assert_eq(rp_timer_wheel_timeout_ns(&r.w, (uint64_t)SEC(5)), 0);
    cr_assert_eq(rp_timer_wheel_advance(&r.w, (uint64_t)SEC(4)), 1, "the past fires, clamped now");
    cr_assert_eq(r.w.now, (uint64_t)SEC(5), "time does not go back");
    cr_assert_eq(rp_timer_wheel_next_deadline(&r.w), UINT64_MAX);
    cr_assert_eq(rp_timer_wheel_count(&r.w), 1);
    cr_assert_eq(rp_timer_wheel_advance(&r.w, UINT64_MAX - 1), 0);
    cr_assert_eq(rp_timer_wheel_advance(&r.w, UINT64_MAX), 1);
    cr_assert_eq(r.log[1], 1);
    cr_assert_eq(rp_timer_wheel_count(&r.w), 0);
}

Test(timer, timeout_for_the_loop)
{
    rec r;
    rec_init(&r, (uint64_t)SEC(1));
    rp_timer_arm(&r.w, &r.tm[0].t, (uint64_t)SEC(1) + 250);
    cr_assert_eq(rp_timer_wheel_timeout_ns(&r.w, (uint64_t)SEC(1)), 250);
    cr_assert_eq(rp_timer_wheel_timeout_ns(&r.w, (uint64_t)SEC(1) + 251), 0);
}

/* ---- randomized model check against a sorted list ---------------------------------------------
 */

#define M_TIMERS 192
#define M_OPS    100000

enum { REF_IDLE, REF_PENDING, REF_DUE };

typedef struct model model;

typedef struct mtimer {
    rp_timer t;
    int id;
    model *m;
} mtimer;

struct model {
    rp_timer_wheel w;
    mtimer tm[M_TIMERS];
    /* The reference: pending ids sorted by (deadline, arm order), and the running advance's
     * expired ids in firing order. */
    int sorted[M_TIMERS];
    size_t nsorted;
    int due[M_TIMERS];
    size_t ndue;
    uint8_t state[M_TIMERS];
    uint64_t deadline[M_TIMERS];
    uint64_t seq[M_TIMERS];
    uint64_t next_seq;
    uint64_t now;
    uint64_t rng;
    bool exact;      /* no cancels and no moves: next_deadline must be exact */
    bool past_armed; /* a deadline <= now was armed since the last advance began */
    size_t fired_this_advance;
    uint64_t total_fired, past_arms, overflow_arms;
};

static bool ref_before(const model *m, int a, int b)
{
    return m->deadline[a] < m->deadline[b] ||
           (m->deadline[a] == m->deadline[b] && m->seq[a] < m->seq[b]);
}

static void remove_id(int *arr, size_t *n, int id)
{
    for (size_t i = 0; i < *n; i++) {
        if (arr[i] != id) continue;
        memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof(arr[0]));
        (*n)--;
        return;
    }
    cr_assert_fail("reference lost timer %d", id);
}

static void ref_remove(model *m, int id)
{
    if (m->state[id] == REF_PENDING) remove_id(m->sorted, &m->nsorted, id);
    if (m->state[id] == REF_DUE) remove_id(m->due, &m->ndue, id);
    m->state[id] = REF_IDLE;
}

static uint64_t ref_min(const model *m)
{
    uint64_t v = m->nsorted > 0 ? m->deadline[m->sorted[0]] : UINT64_MAX;
    if (m->ndue > 0 && m->deadline[m->due[0]] < v) v = m->deadline[m->due[0]];
    return v;
}

/* Arms both the wheel and the reference. */
static void m_arm(model *m, int id, uint64_t d)
{
    ref_remove(m, id);
    m->deadline[id] = d;
    m->seq[id] = m->next_seq++;
    size_t pos = m->nsorted;
    while (pos > 0 && ref_before(m, id, m->sorted[pos - 1])) pos--;
    memmove(&m->sorted[pos + 1], &m->sorted[pos], (m->nsorted - pos) * sizeof(int));
    m->sorted[pos] = id;
    m->nsorted++;
    m->state[id] = REF_PENDING;
    if (d <= m->now) {
        m->past_arms++;
        m->past_armed = true;
    }
    if (d > m->now + (uint64_t)SPAN_NS) m->overflow_arms++;
    rp_timer_arm(&m->w, &m->tm[id].t, d);
}

static void m_cancel(model *m, int id)
{
    ref_remove(m, id);
    rp_timer_cancel(&m->tm[id].t);
}

/* A deadline from a mix meant to hit every level, slot edges, ties and the past. */
static uint64_t m_deadline(model *m)
{
    static const int64_t spans[] = { MS(1), MS(64), SEC(4), SEC(262), HR(4), DAY(10) };
    uint64_t r = below(&m->rng, 16);
    uint64_t d;
    if (r == 0) return add_sat(m->now, -(int64_t)below(&m->rng, (uint64_t)MS(10))); /* past */
    if (r == 1) return m->now;
    if (r == 2 && m->nsorted > 0) return m->deadline[m->sorted[below(&m->rng, m->nsorted)]];
    int64_t span = spans[below(&m->rng, ARRAY_LEN(spans))];
    d = add_sat(m->now, 1 + (int64_t)below(&m->rng, (uint64_t)span));
    if (r == 3) d -= d % (uint64_t)MS(1); /* on a tick: slot starts */
    if (r == 4) d -= d % ((uint64_t)MS(1) << 12);
    return d;
}

static void m_check(model *m)
{
    cr_assert_eq(rp_timer_wheel_count(&m->w), m->nsorted + m->ndue);
    uint64_t want = ref_min(m);
    uint64_t nd = rp_timer_wheel_next_deadline(&m->w);
    cr_assert_leq(nd, want, "next_deadline %lu later than the earliest %lu", (unsigned long)nd,
                  (unsigned long)want);
    if (m->exact) cr_assert_eq(nd, want, "next_deadline not exact");
    /* A cancelled past deadline may leave a bound <= now: one immediate advance rescans it. */
    if (want > m->now && !m->past_armed)
        cr_assert_gt(nd, m->now, "next_deadline would make the loop spin");
}

static void m_fire(rp_timer *t, void *arg)
{
    mtimer *mt = arg;
    model *m = mt->m;
    cr_assert_gt(m->ndue, 0, "timer %d fired, none expected", mt->id);
    cr_assert_eq(m->due[0], mt->id, "fired %d, expected %d", mt->id, m->due[0]);
    cr_assert(!rp_timer_armed(t));
    remove_id(m->due, &m->ndue, mt->id);
    m->state[mt->id] = REF_IDLE;
    m->fired_this_advance++;
    m->total_fired++;
    m_check(m);

    uint64_t r = below(&m->rng, 8);
    int j = (int)below(&m->rng, M_TIMERS);
    if (r < 3) {
        if (m->exact && m->state[j] != REF_IDLE) return; /* a move would stale a slot minimum */
        m_arm(m, j, m_deadline(m));
    } else if (r == 3 && !m->exact) {
        m_cancel(m, j);
    }
    m_check(m);
}

static void m_advance(model *m, uint64_t now)
{
    if (now < m->now) now = m->now;
    m->now = now;
    while (m->nsorted > 0 && m->deadline[m->sorted[0]] <= now) {
        int id = m->sorted[0];
        remove_id(m->sorted, &m->nsorted, id);
        m->due[m->ndue++] = id;
        m->state[id] = REF_DUE;
    }
    m->fired_this_advance = 0;
    m->past_armed = false;
    size_t got = rp_timer_wheel_advance(&m->w, now);
    cr_assert_eq(m->ndue, 0, "%zu expired timers did not fire", m->ndue);
    cr_assert_eq(got, m->fired_this_advance);
}

static void run_model(uint64_t seed, bool exact)
{
    static model m; /* 60 KiB: off the stack */
    memset(&m, 0, sizeof(m));
    m.rng = seed;
    m.exact = exact;
    m.now = UINT64_C(1) << 50;
    rp_timer_wheel_init(&m.w, m.now);
    for (int i = 0; i < M_TIMERS; i++) {
        m.tm[i].id = i;
        m.tm[i].m = &m;
        rp_timer_init(&m.tm[i].t, m_fire, &m.tm[i]);
    }
    /* Mostly short steps, so tens of timers stay pending; now and then hours or days. */
    static const int64_t steps[] = { 0,      0,        MS(1),    MS(1),  MS(1),  MS(1),
                                     MS(64), MS(64),   MS(64),   MS(64), SEC(5), SEC(5),
                                     SEC(5), SEC(300), SEC(300), HR(5),  DAY(3) };
    for (int op = 0; op < M_OPS; op++) {
        uint64_t r = below(&m.rng, 20);
        int j = (int)below(&m.rng, M_TIMERS);
        if (r < 10) {
            if (!(exact && m.state[j] != REF_IDLE)) m_arm(&m, j, m_deadline(&m));
        } else if (r < 13 && !exact) {
            m_cancel(&m, j);
        } else if (r == 13 && m.nsorted > 0) {
            m_advance(&m, rp_timer_wheel_next_deadline(&m.w)); /* the loop's own wakeup */
        } else if (r == 14 && m.nsorted > 0) {
            uint64_t d = m.deadline[m.sorted[0]];
            m_advance(&m, d > 0 ? d - 1 : 0);
        } else {
            int64_t span = steps[below(&m.rng, ARRAY_LEN(steps))];
            m_advance(&m, m.now + below(&m.rng, (uint64_t)span + 1));
        }
        m_check(&m);
        for (int i = 0; i < M_TIMERS; i++)
            if (op % 4096 == 0 || i == j)
                cr_assert_eq(rp_timer_armed(&m.tm[i].t), m.state[i] != REF_IDLE, "armed(%d)", i);
    }
    /* The mix must actually have reached the interesting cases. */
    cr_assert_gt(m.total_fired, M_OPS / 10, "fired %lu", (unsigned long)m.total_fired);
    cr_assert_gt(m.past_arms, 100);
    cr_assert_gt(m.overflow_arms, 100);
    cr_assert_gt(m.w.stats.moved, 1000);
    cr_assert_lt(m.now, UINT64_C(1) << 62, "time ran to the end: the mix is degenerate");
}

Test(timer, model_check_with_cancels)
{
    run_model(UINT64_C(0x5eed0001), false);
}

Test(timer, model_check_exact_next_deadline)
{
    run_model(UINT64_C(0x5eed0002), true);
}
