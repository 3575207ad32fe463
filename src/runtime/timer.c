#include "runtime/timer.h"

#include <assert.h>

/* Where an armed timer is listed, beside the levels 0..RP_TIMER_LEVELS-1. */
enum { WHERE_OVERFLOW = RP_TIMER_LEVELS, WHERE_DUE };

#define SLOT_MASK (RP_TIMER_SLOTS - 1)

/* log2 of the ticks one slot of `level` spans (level RP_TIMER_LEVELS: a whole rotation). */
static unsigned level_shift(unsigned level)
{
    return level * RP_TIMER_SLOT_BITS;
}

/* The tick with every digit below `level` cleared. */
static uint64_t digits_from(uint64_t tick, unsigned level)
{
    return tick >> level_shift(level) << level_shift(level);
}

static uint64_t tick_of(uint64_t ns)
{
    return ns / RP_TIMER_TICK_NS;
}

static bool fires_before(const rp_timer *a, const rp_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void link_head(rp_timer **head, rp_timer *t)
{
    t->next = *head;
    if (t->next != NULL) t->next->pprev = &t->next;
    *head = t;
    t->pprev = head;
}

static void unlink_timer(rp_timer *t)
{
    *t->pprev = t->next;
    if (t->next != NULL) t->next->pprev = t->pprev;
    t->next = NULL;
    t->pprev = NULL;
}

/*
 * Lists a timer relative to w->tick: at the level of the highest base-64
 * digit in which its tick differs from the current one, so its slot is ahead
 * of the current slot of that level (or is the current tick at level 0).
 * Deadlines already past go to the current tick.
 */
static void place(rp_timer_wheel *w, rp_timer *t)
{
    uint64_t e = tick_of(t->deadline);
    if (e < w->tick) e = w->tick;
    uint64_t diff = e ^ w->tick;
    unsigned level = diff == 0 ? 0 : (unsigned)(63 - __builtin_clzll(diff)) / RP_TIMER_SLOT_BITS;
    if (level >= RP_TIMER_LEVELS) {
        t->where = WHERE_OVERFLOW;
        if (t->deadline < w->overflow_min) w->overflow_min = t->deadline;
        link_head(&w->overflow, t);
        return;
    }
    unsigned slot = (unsigned)(e >> level_shift(level)) & SLOT_MASK;
    t->where = (uint8_t)level;
    t->slot = (uint8_t)slot;
    w->occupied[level] |= UINT64_C(1) << slot;
    if (t->deadline < w->slot_min[level][slot]) w->slot_min[level][slot] = t->deadline;
    link_head(&w->slots[level][slot], t);
}

/* Takes a slot's whole list (linked by `next` only) and marks the slot empty. */
static rp_timer *detach_slot(rp_timer_wheel *w, unsigned level, unsigned slot)
{
    rp_timer *list = w->slots[level][slot];
    w->slots[level][slot] = NULL;
    w->occupied[level] &= ~(UINT64_C(1) << slot);
    w->slot_min[level][slot] = UINT64_MAX;
    return list;
}

static rp_timer *merge(rp_timer *a, rp_timer *b)
{
    rp_timer *head = NULL, **tail = &head;
    while (a != NULL && b != NULL) {
        if (fires_before(b, a)) {
            *tail = b;
            b = b->next;
        } else {
            *tail = a;
            a = a->next;
        }
        tail = &(*tail)->next;
    }
    *tail = a != NULL ? a : b;
    return head;
}

/*
 * Bottom-up merge sort of a `next`-linked list: the timers of one tick come
 * out in firing order in O(n log n), with no allocation. bins[i] holds a
 * sorted run of 2^i timers, so 64 bins cover any list.
 */
static rp_timer *sort_firing_order(rp_timer *list)
{
    if (list == NULL || list->next == NULL) return list;
    rp_timer *bins[64] = { NULL };
    while (list != NULL) {
        rp_timer *run = list;
        list = list->next;
        run->next = NULL;
        unsigned i = 0;
        for (; bins[i] != NULL; i++) {
            run = merge(bins[i], run);
            bins[i] = NULL;
        }
        bins[i] = run;
    }
    rp_timer *out = NULL;
    for (unsigned i = 0; i < 64; i++)
        if (bins[i] != NULL) out = merge(bins[i], out);
    return out;
}

/* Appends a sorted `next`-linked list to the due list, whose last link is *tail. */
static rp_timer **append_due(rp_timer **tail, rp_timer *list)
{
    list = sort_firing_order(list);
    while (list != NULL) {
        rp_timer *t = list;
        list = list->next;
        t->where = WHERE_DUE;
        t->next = NULL;
        t->pprev = tail;
        *tail = t;
        tail = &t->next;
    }
    return tail;
}

/*
 * The earliest occupied slot: the first one of the lowest non-empty level,
 * since a level's slots all lie before the next slot of the level above.
 * The overflow counts as level RP_TIMER_LEVELS, starting at the rotation of
 * its earliest deadline. Returns false when the wheel is empty.
 */
static bool next_slot(const rp_timer_wheel *w, unsigned *level, unsigned *slot, uint64_t *start)
{
    for (unsigned l = 0; l < RP_TIMER_LEVELS; l++) {
        if (w->occupied[l] == 0) continue;
        unsigned s = (unsigned)__builtin_ctzll(w->occupied[l]);
        *level = l;
        *slot = s;
        *start = digits_from(w->tick, l + 1) | (uint64_t)s << level_shift(l);
        return true;
    }
    if (w->overflow == NULL) return false;
    *level = RP_TIMER_LEVELS;
    *slot = 0;
    *start = digits_from(tick_of(w->overflow_min), RP_TIMER_LEVELS);
    return true;
}

void rp_timer_wheel_init(rp_timer_wheel *w, uint64_t now_ns)
{
    *w = (rp_timer_wheel){ 0 };
    w->now = now_ns;
    w->tick = tick_of(now_ns);
    for (unsigned l = 0; l < RP_TIMER_LEVELS; l++)
        for (unsigned s = 0; s < RP_TIMER_SLOTS; s++) w->slot_min[l][s] = UINT64_MAX;
    w->overflow_min = UINT64_MAX;
}

void rp_timer_init(rp_timer *t, rp_timer_fn fn, void *arg)
{
    *t = (rp_timer){ 0 };
    t->fn = fn;
    t->arg = arg;
}

void rp_timer_cancel(rp_timer *t)
{
    if (t->pprev == NULL) return;
    rp_timer_wheel *w = t->wheel;
    unlink_timer(t);
    w->count--;
    /* A slot left non-empty keeps its minimum as a lower bound (see slot_min). */
    if (t->where < RP_TIMER_LEVELS) {
        if (w->slots[t->where][t->slot] == NULL) detach_slot(w, t->where, t->slot);
    } else if (t->where == WHERE_OVERFLOW) {
        if (w->overflow == NULL) w->overflow_min = UINT64_MAX;
    }
}

void rp_timer_arm(rp_timer_wheel *w, rp_timer *t, uint64_t deadline_ns)
{
    rp_timer_cancel(t);
    t->wheel = w;
    t->deadline = deadline_ns;
    t->seq = w->seq++;
    place(w, t);
    w->count++;
}

bool rp_timer_armed(const rp_timer *t)
{
    return t->pprev != NULL;
}

uint64_t rp_timer_deadline(const rp_timer *t)
{
    return t->deadline;
}

/* Re-lists every timer of a slot (or the overflow) relative to the new current tick. */
static void cascade(rp_timer_wheel *w, rp_timer *list)
{
    while (list != NULL) {
        rp_timer *t = list;
        list = list->next;
        place(w, t);
        w->stats.moved++;
    }
}

/*
 * Phase one of advance: moves every timer due at `now` to w->due in firing
 * order, touching only occupied slots. Level-0 slots before the target tick
 * expire whole (all their deadlines are < now); the slot of the target tick
 * itself is split by deadline. Higher slots and the overflow are cascaded
 * when the wheel reaches their start.
 */
static void collect_due(rp_timer_wheel *w, uint64_t now)
{
    uint64_t target = tick_of(now);
    rp_timer **tail = &w->due;
    unsigned level, slot;
    uint64_t start;
    while (next_slot(w, &level, &slot, &start) && start <= target) {
        if (level > 0) {
            w->stats.slots_visited++;
            assert(start > w->tick);
            w->tick = start;
            rp_timer *list = level < RP_TIMER_LEVELS ? detach_slot(w, level, slot) : w->overflow;
            if (level == RP_TIMER_LEVELS) {
                w->overflow = NULL;
                w->overflow_min = UINT64_MAX;
            }
            cascade(w, list);
            continue;
        }
        if (start < target) {
            w->stats.slots_visited++;
            tail = append_due(tail, detach_slot(w, 0, slot));
            continue;
        }
        /*
         * The target tick: everything later lies beyond it. Scan only when the
         * slot's lower bound says something may be due.
         */
        if (w->slot_min[0][slot] <= now) {
            w->stats.slots_visited++;
            rp_timer *expired = NULL;
            uint64_t min = UINT64_MAX;
            rp_timer **pp = &w->slots[0][slot];
            while (*pp != NULL) {
                rp_timer *t = *pp;
                if (t->deadline <= now) {
                    *pp = t->next;
                    if (t->next != NULL) t->next->pprev = pp;
                    t->next = expired;
                    expired = t;
                } else {
                    if (t->deadline < min) min = t->deadline;
                    pp = &t->next;
                }
            }
            if (w->slots[0][slot] == NULL) {
                detach_slot(w, 0, slot);
            } else {
                w->slot_min[0][slot] = min;
            }
            tail = append_due(tail, expired);
        }
        break;
    }
    w->tick = target;
}

size_t rp_timer_wheel_advance(rp_timer_wheel *w, uint64_t now_ns)
{
    assert(!w->firing && "rp_timer_wheel_advance called from a timer callback");
    if (w->firing) return 0;
    if (now_ns < w->now) now_ns = w->now;
    w->now = now_ns;
    collect_due(w, now_ns);

    /*
     * Phase two: fire from the head of w->due. Callbacks may cancel or re-arm
     * timers still on it (they leave it), and new arms go to the wheel, so
     * this loop ends and sees each timer once.
     */
    w->firing = true;
    size_t fired = 0;
    rp_timer *t;
    while ((t = w->due) != NULL) {
        unlink_timer(t);
        w->count--;
        fired++;
        w->stats.fired++;
        t->fn(t, t->arg); /* may free t */
    }
    w->firing = false;
    return fired;
}

uint64_t rp_timer_wheel_next_deadline(const rp_timer_wheel *w)
{
    uint64_t best = w->due != NULL ? w->due->deadline : UINT64_MAX;
    unsigned level, slot;
    uint64_t start;
    if (next_slot(w, &level, &slot, &start)) {
        uint64_t m = level < RP_TIMER_LEVELS ? w->slot_min[level][slot] : w->overflow_min;
        if (m < best) best = m;
    }
    return best;
}

uint64_t rp_timer_wheel_timeout_ns(const rp_timer_wheel *w, uint64_t now_ns)
{
    uint64_t d = rp_timer_wheel_next_deadline(w);
    if (d == UINT64_MAX) return UINT64_MAX;
    return d > now_ns ? d - now_ns : 0;
}

size_t rp_timer_wheel_count(const rp_timer_wheel *w)
{
    return w->count;
}
