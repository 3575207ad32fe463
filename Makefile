# ringp2p — libp2p in C11 on io_uring.
#
#   make            deps, then library (.a/.so), tool and benchmarks
#   make run        the main job (see README.md)
#   make test       unit tests under ASan+UBSan, js-libp2p cross-checks, short fuzz runs
#   make fuzz       long fuzz runs (FUZZ_SECONDS=N per target)
#   make bench      benchmarks (BENCH_ARGS for tcp_throughput and bench_rings, PERF_MODES_ARGS)
#   make install    PREFIX=/usr/local DESTDIR=
#   make format     apply .clang-format

PREFIX       ?= /usr/local
DESTDIR      ?=
CC           ?= cc
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 4
BUILD        ?= build
V            ?= 0
JOBS         ?= $(shell nproc)

VERSION      := 0.1.0
SOMAJOR      := 0

BORINGSSL_INC := /usr/include/android
BORINGSSL_LIB := /usr/lib/x86_64-linux-gnu/android

Q := $(if $(filter 1,$(V)),,@)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wvla -Wformat=2 -Wundef -Wimplicit-fallthrough -Wno-unused-parameter
CSTD := -std=c11 -D_GNU_SOURCE
CPPFLAGS_ALL := -Iinclude -Isrc -I$(BUILD)/gen -isystem $(BORINGSSL_INC) $(CPPFLAGS)
OPT    ?= -O2 -g
CFLAGS_ALL := $(CSTD) $(OPT) $(WARN) -fPIC -fvisibility=hidden $(CFLAGS)
LIBS := -L$(BORINGSSL_LIB) -Wl,-rpath,$(BORINGSSL_LIB) -lssl -lcrypto -lsecp256k1 -lprotobuf-c \
        -lmimalloc -luring -lpthread

SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRCS   := $(shell find src -name '*.c' | sort)
PROTOS     := $(wildcard proto/*.proto)
PROTO_C    := $(patsubst proto/%.proto,$(BUILD)/gen/proto/%.pb-c.c,$(PROTOS))
PROTO_H    := $(PROTO_C:.c=.h)
TOOL_SRCS  := $(wildcard tools/ringp2p/*.c)
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_LIB_SRCS := $(wildcard bench/common/*.c)
TEST_SRCS  := $(wildcard tests/unit/*.c)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
INTEROP_SRCS := $(wildcard tests/interop/*.c)

# Release objects (one set serves the .a and the .so).
OBJ_DIR    := $(BUILD)/obj
LIB_OBJS   := $(patsubst %.c,$(OBJ_DIR)/%.o,$(LIB_SRCS)) $(patsubst %.c,$(OBJ_DIR)/%.o,$(PROTO_C))
TOOL_OBJS  := $(patsubst %.c,$(OBJ_DIR)/%.o,$(TOOL_SRCS))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
BENCH_LIB_OBJS := $(patsubst %.c,$(OBJ_DIR)/%.o,$(BENCH_LIB_SRCS))

# Sanitizer build of the library, the tool and the unit tests.
ASAN_DIR   := $(BUILD)/asan
ASAN_OBJS  := $(patsubst %.c,$(ASAN_DIR)/%.o,$(LIB_SRCS)) $(patsubst %.c,$(ASAN_DIR)/%.o,$(PROTO_C))
TEST_OBJS  := $(patsubst %.c,$(ASAN_DIR)/%.o,$(TEST_SRCS))

# libFuzzer build (clang).
FUZZ_DIR   := $(BUILD)/fuzz
FUZZ_OBJS  := $(patsubst %.c,$(FUZZ_DIR)/%.o,$(LIB_SRCS)) $(patsubst %.c,$(FUZZ_DIR)/%.o,$(PROTO_C))
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRCS))

.PHONY: all build lib tool bench-bins deps run test unit interop fuzz fuzz-smoke bench install \
        install-check \
        uninstall format format-check clean
.DEFAULT_GOAL := all

all:
	$(Q)$(MAKE) --no-print-directory deps
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) build

build: lib tool bench-bins

deps:
	$(Q)bash tools/deps.sh

lib: $(BUILD)/libringp2p.a $(BUILD)/libringp2p.so

tool: $(BUILD)/ringp2p

bench-bins: $(BENCH_BINS)

# ---- generated protobuf code ----------------------------------------------------------------
$(BUILD)/gen/proto/%.pb-c.c $(BUILD)/gen/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	$(Q)protoc-c --c_out=$(BUILD)/gen $<

# Keep intermediate objects (fuzz and interop mains) so reruns do not rebuild them.
.SECONDARY:

# ---- release build ----------------------------------------------------------------------------
# Generated code is compiled without our warning set (it is not ours to fix).
$(OBJ_DIR)/$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CSTD) $(OPT) -fPIC -fvisibility=hidden $(CPPFLAGS_ALL) -MMD -MP -c $< -o $@

$(OBJ_DIR)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(CPPFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libringp2p.a: $(LIB_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/libringp2p.so: $(LIB_OBJS)
	$(Q)$(CC) -shared -Wl,-soname,libringp2p.so.$(SOMAJOR) -o $@ $^ $(LIBS)

$(BUILD)/ringp2p: $(TOOL_OBJS) $(BUILD)/libringp2p.a
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $(TOOL_OBJS) $(BUILD)/libringp2p.a $(LIBS)

# Every benchmark links the shared harness in bench/common/ (iperf3 runs, CPU accounting, medians).
$(BUILD)/bench/%: $(OBJ_DIR)/bench/%.o $(BENCH_LIB_OBJS) $(BUILD)/libringp2p.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) -o $@ $< $(BENCH_LIB_OBJS) $(BUILD)/libringp2p.a $(LIBS) -lm

# ---- sanitizer build --------------------------------------------------------------------------
$(ASAN_DIR)/$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CSTD) -O1 -g $(SAN) $(CPPFLAGS_ALL) -MMD -MP -c $< -o $@

$(ASAN_DIR)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	$(Q)$(CC) $(CSTD) -O1 -g $(WARN) $(SAN) $(CPPFLAGS_ALL) -MMD -MP -c $< -o $@

$(ASAN_DIR)/libringp2p.a: $(ASAN_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(ASAN_DIR)/unit: $(TEST_OBJS) $(ASAN_DIR)/libringp2p.a
	$(Q)$(CC) $(SAN) -o $@ $(TEST_OBJS) $(ASAN_DIR)/libringp2p.a $(LIBS) -lcriterion

$(ASAN_DIR)/ringp2p: $(patsubst %.c,$(ASAN_DIR)/%.o,$(TOOL_SRCS)) $(ASAN_DIR)/libringp2p.a
	$(Q)$(CC) $(SAN) -o $@ $^ $(LIBS)

# Small C programs the interop scripts drive (sanitized, like the tool they test).
INTEROP_BINS := $(patsubst tests/interop/%.c,$(ASAN_DIR)/interop/%,$(INTEROP_SRCS))

$(ASAN_DIR)/interop/%: $(ASAN_DIR)/tests/interop/%.o $(ASAN_DIR)/libringp2p.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN) -o $@ $^ $(LIBS)

# ---- fuzz build -------------------------------------------------------------------------------
FUZZ_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -g -O1

$(FUZZ_DIR)/$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(CSTD) $(FUZZ_FLAGS) $(CPPFLAGS_ALL) -MMD -MP -c $< -o $@

$(FUZZ_DIR)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(CSTD) $(FUZZ_FLAGS) $(WARN) $(CPPFLAGS_ALL) -MMD -MP -c $< -o $@

$(FUZZ_DIR)/libringp2p.a: $(FUZZ_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/tests/fuzz/fuzz_%.o $(FUZZ_DIR)/libringp2p.a
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

# ---- running ----------------------------------------------------------------------------------
run:
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bash tools/demo.sh $(BUILD)/ringp2p

test:
	$(Q)$(MAKE) --no-print-directory deps
	$(Q)$(MAKE) --no-print-directory format-check
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) build
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) unit
	$(Q)$(MAKE) --no-print-directory interop
	$(Q)$(MAKE) --no-print-directory netns
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) fuzz-smoke
	$(Q)$(MAKE) --no-print-directory install-check
	@echo "make test: all stages passed"

unit: $(ASAN_DIR)/unit
	@echo "== unit tests (Criterion, ASan+UBSan)"
	$(Q)bash tests/unit/run.sh $(ASAN_DIR)/unit $(UNIT_ARGS)

interop: $(BUILD)/ringp2p $(ASAN_DIR)/ringp2p $(INTEROP_BINS)
	@echo "== cross-checks against js-libp2p"
	$(Q)bash tests/interop/run.sh $(ASAN_DIR)/ringp2p $(ASAN_DIR)/interop
	@echo "== real js-libp2p nodes against ringp2p (both directions)"
	$(Q)bash tests/interop/run.sh $(ASAN_DIR)/ringp2p $(ASAN_DIR)/interop --suite host
	@echo "== real js-libp2p nodes through a ringp2p relay (circuit relay v2)"
	$(Q)bash tests/interop/run.sh $(ASAN_DIR)/ringp2p $(ASAN_DIR)/interop --suite relay

# NAT traversal in network namespaces (tests/netns/README.md); needs root, skips otherwise.
.PHONY: netns
NETNS_TOOL := $(BUILD)/netns/nstool

$(NETNS_TOOL): tests/netns/nstool.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	$(Q)$(CC) $(CSTD) -O2 -g $(WARN) -o $@ $<

netns: $(NETNS_TOOL) $(ASAN_DIR)/ringp2p
	@echo "== NAT traversal in network namespaces"
	$(Q)bash tests/netns/run.sh --nstool $(NETNS_TOOL) --ringp2p $(ASAN_DIR)/ringp2p

fuzz-smoke: $(FUZZ_BINS)
	@echo "== fuzz smoke runs ($(FUZZ_SMOKE_SECONDS)s per target)"
	$(Q)bash tests/fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_BINS)

install-check: lib tool
	@echo "== install into a temporary prefix, build the README example with pkg-config"
	$(Q)bash tests/install/check.sh

fuzz: $(FUZZ_BINS)
	$(Q)bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

# perf_modes (security modes vs iperf3 and js-libp2p, handshakes, streams) takes its own
# arguments, e.g. make bench PERF_MODES_ARGS="--rounds 3 --size 256M"; its JSON goes next to it.
PERF_MODES := $(BUILD)/bench/perf_modes

bench:
	$(Q)$(MAKE) --no-print-directory all
	$(Q)for b in $(filter-out $(PERF_MODES),$(BENCH_BINS)); do echo "== $$b"; $$b $(BENCH_ARGS) || exit 1; done
	@echo "== $(PERF_MODES)"
	$(Q)$(PERF_MODES) --json $(PERF_MODES).json $(PERF_MODES_ARGS)

# ---- install ----------------------------------------------------------------------------------
install: lib tool
	install -d $(DESTDIR)$(PREFIX)/include/ringp2p $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/bin
	install -m 0644 include/ringp2p/*.h $(DESTDIR)$(PREFIX)/include/ringp2p/
	install -m 0644 $(BUILD)/libringp2p.a $(DESTDIR)$(PREFIX)/lib/
	install -m 0755 $(BUILD)/libringp2p.so $(DESTDIR)$(PREFIX)/lib/libringp2p.so.$(VERSION)
	ln -sf libringp2p.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libringp2p.so.$(SOMAJOR)
	ln -sf libringp2p.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libringp2p.so
	install -m 0755 $(BUILD)/ringp2p $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@BORINGSSL_INC@|$(BORINGSSL_INC)|g' -e 's|@BORINGSSL_LIB@|$(BORINGSSL_LIB)|g' \
	    tools/ringp2p.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ringp2p.pc

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/ringp2p
	rm -f $(DESTDIR)$(PREFIX)/lib/libringp2p.* $(DESTDIR)$(PREFIX)/lib/pkgconfig/ringp2p.pc \
	    $(DESTDIR)$(PREFIX)/bin/ringp2p

# ---- style ------------------------------------------------------------------------------------
FORMAT_FILES = $(shell find src include tools tests bench -name '*.[ch]' -not -path '*/node_modules/*')

format:
	$(Q)clang-format -i $(FORMAT_FILES)

format-check:
	@echo "== clang-format check"
	$(Q)clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
