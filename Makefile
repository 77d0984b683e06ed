# retort — build, test and demo.
#   make            build/retort and build/libretort.a
#   make test       all tests (C unit tests + reference checks against peers)
#   make demo       the main job on the built-in corpus (see README)
#   make san        build and run the C tests under ASan/UBSan (build-san/)
#   make deps       install what is missing on Debian 12 (scripts/deps.sh; demo and test run it)
#   make fuzz       every fuzz/fuzz_*.c under libFuzzer+ASan+UBSan, FUZZ_SECONDS each (build-fuzz/)
#   make install    build/retort and its man page under $(DESTDIR)$(PREFIX) (PREFIX=/usr/local)
#   make man        regenerate docs/retort.1 from the commands' --help texts
# Variables: CC=clang, OPENMP=0 (build without OpenMP), WERROR=1 (warnings are errors),
#            SAN=address,undefined, ARCH=-march=x86-64-v3 (default: -march=native),
#            MPI=0 (build without MPI; default MPI=1 when OpenMPI's mpicc or ompi-c.pc is found).

CC      ?= gcc
BUILD   ?= build
OPENMP  ?= 1
WERROR  ?= 0
ARCH    ?= -march=native
OPT     ?= -O3
SAN     ?=

PKGS := jansson libsodium libzstd libcurl sqlite3 libpq libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Debian 12 ships BLIS without a .pc file; the OpenMP build lives in its own directory.
BLIS_DIR    ?= /usr/lib/x86_64-linux-gnu/blis-openmp
BLIS_CFLAGS ?= -isystem /usr/include/x86_64-linux-gnu/blis-openmp
BLIS_LIBS   ?= -L$(BLIS_DIR) -Wl,-rpath,$(BLIS_DIR) -lblis

CFLAGS_ALL := -std=c17 -D_GNU_SOURCE $(OPT) $(ARCH) -g -Wall -Wextra -Wno-unused-parameter \
              -MMD -MP $(BLIS_CFLAGS) $(PKG_CFLAGS) $(CFLAGS)
ifeq ($(WERROR),1)
CFLAGS_ALL += -Werror
endif
# RT_ASSERT invariants (src/base/base.h): on in `make san` and debug builds (OPT=-O0 or -Og),
# compiled out of release builds unless RT_ASSERTS=1.
ifeq ($(origin RT_ASSERTS),undefined)
ifneq ($(SAN)$(filter -O0 -Og,$(OPT)),)
RT_ASSERTS := 1
else
RT_ASSERTS := 0
endif
endif
CFLAGS_ALL += -DRT_ASSERTS=$(RT_ASSERTS)
ifeq ($(OPENMP),1)
CFLAGS_ALL += -fopenmp
LDOMP := -fopenmp
else
CFLAGS_ALL += -Wno-unknown-pragmas
endif
# MPI: data-parallel train/distill/sft and split cache-teacher/eval under mpirun (src/train/dist.c).
# Flags come from the wrapper compiler (any MPI) or OpenMPI's pkg-config file; MPI=0 builds a
# binary whose process group is always one rank.
MPI_FOUND := $(shell command -v mpicc >/dev/null 2>&1 && echo 1 || (pkg-config --exists ompi-c 2>/dev/null && echo 1))
MPI ?= $(if $(MPI_FOUND),1,0)
ifeq ($(MPI),1)
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null || mpicc -compile-info 2>/dev/null | cut -d' ' -f2- || pkg-config --cflags ompi-c)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null || mpicc -link-info 2>/dev/null | cut -d" " -f2- || pkg-config --libs ompi-c)
# -isystem: warnings in mpi.h are not ours
CFLAGS_ALL += -DRETORT_MPI=1 $(patsubst -I%,-isystem %,$(filter -I%,$(MPI_CFLAGS))) $(filter-out -I%,$(MPI_CFLAGS))
endif
ifneq ($(SAN),)
CFLAGS_ALL += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN := -fsanitize=$(SAN)
endif
LDLIBS_ALL := $(BLIS_LIBS) $(PKG_LIBS) $(MPI_LIBS) -lm -lpthread $(LDOMP) $(LDSAN) $(LDFLAGS)

LIB_SRC  := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# Generated assets compiled into the library (web pages etc.) go in $(BUILD)/gen: the admin
# dashboard's files (web/) become byte arrays by scripts/embed.c, a build tool in plain C.
WEB_FILES := $(sort $(wildcard web/*.html web/*.css web/*.js web/*.svg))
# The demo's scenarios (scenarios/demo/*.json) are embedded the same way.
DEMO_FILES := $(sort $(wildcard scenarios/demo/*.json))
GEN_SRC  := $(BUILD)/gen/web_assets.c $(BUILD)/gen/demo_scenarios.c
GEN_OBJ  := $(GEN_SRC:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)
LIB_OBJ  += $(GEN_OBJ)
EMBED    := $(BUILD)/tools/embed

.PHONY: all test demo demo-quick engine-demo san clean corpus tests bench FORCE \
        deps deps-demo test-run demo-run demo-quick-run fuzz fuzz-ci fuzz-build fuzz-bins install uninstall man
all: $(BUILD)/retort $(BUILD)/libretort.a

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(EMBED): scripts/embed.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -O1 -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -o $@ $<

# web_files.txt changes only when the list of files does (a removed file rebuilds too).
$(BUILD)/gen/web_files.txt: FORCE
	@mkdir -p $(dir $@)
	@echo '$(WEB_FILES)' | cmp -s - $@ || echo '$(WEB_FILES)' > $@

$(BUILD)/gen/web_assets.c: $(EMBED) $(WEB_FILES) $(BUILD)/gen/web_files.txt
	$(EMBED) $@ web $(WEB_FILES)

$(BUILD)/gen/demo_files.txt: FORCE
	@mkdir -p $(dir $@)
	@echo '$(DEMO_FILES)' | cmp -s - $@ || echo '$(DEMO_FILES)' > $@

$(BUILD)/gen/demo_scenarios.c: $(EMBED) $(DEMO_FILES) $(BUILD)/gen/demo_files.txt
	$(EMBED) --table demo_scenarios --header src/cli/demo_scenarios.h $@ scenarios/demo $(DEMO_FILES)

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I. -c $< -o $@

$(BUILD)/libretort.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/retort: $(CLI_OBJ) $(BUILD)/libretort.a
	$(CC) $(CFLAGS_ALL) -o $@ $(CLI_OBJ) $(BUILD)/libretort.a $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libretort.a tests/testlib.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -o $@ $< $(BUILD)/libretort.a $(LDLIBS_ALL)

tests: $(TEST_BIN)

# The default corpus: the King James Bible from Debian's bible-kjv package.
corpus: $(BUILD)/data/kjv.txt
$(BUILD)/data/kjv.txt:
	@mkdir -p $(dir $@)
	@command -v bible >/dev/null || { echo "error: 'bible' not found; install Debian's bible-kjv package (apt-get install bible-kjv)"; exit 1; }
	bible Gen1:1-Rev22:21 > $@.tmp && mv $@.tmp $@

# `make test` and `make demo` first install what is missing (scripts/deps.sh: no apt call when
# nothing is), then build in a fresh make so pkg-config sees the libraries just installed.
deps:
	@scripts/deps.sh test
deps-demo:
	@scripts/deps.sh demo

test: deps
	@$(MAKE) --no-print-directory test-run
test-run: all tests $(BUILD)/data/kjv.txt
	BUILD=$(BUILD) tests/run.sh

# make check-deps: every #include follows an allowed room -> room edge (docs/architecture.md);
# CI runs it after the build.
.PHONY: check-deps
check-deps:
	scripts/check_deps.sh

san:
	$(MAKE) BUILD=build-san SAN=address,undefined OPT=-O1 tests all
	BUILD=build-san RETORT_TEST_QUICK=1 tests/run.sh --c-only

demo: deps-demo
	@$(MAKE) --no-print-directory demo-run
demo-run: all $(BUILD)/data/kjv.txt
	$(BUILD)/retort demo --dir $(BUILD)/demo --corpus $(BUILD)/data/kjv.txt

demo-quick: deps-demo
	@$(MAKE) --no-print-directory demo-quick-run
demo-quick-run: all $(BUILD)/data/kjv.txt
	$(BUILD)/retort demo --quick --dir $(BUILD)/demo-quick --corpus $(BUILD)/data/kjv.txt

# the engine alone: a ~5M-parameter teacher on the corpus, its held-out loss, samples
engine-demo: all $(BUILD)/data/kjv.txt
	BUILD=$(BUILD) scripts/engine_demo.sh

bench: all $(BUILD)/data/kjv.txt
	BUILD=$(BUILD) bench/run_all.sh

# ---- fuzzing: every fuzz/fuzz_*.c defines LLVMFuzzerTestOneInput against the library's API
# (-Isrc) and is linked with clang's libFuzzer against a clang ASan+UBSan build of the library
# in $(FUZZ_BUILD) (single-threaded: OPENMP=0). Seeds: fuzz/corpus/<name>/ (name without the
# fuzz_ prefix); what the fuzzer finds goes to $(FUZZ_BUILD)/corpus/<name>/, crashes to
# $(FUZZ_BUILD)/crashes/. `make fuzz` runs each target FUZZ_SECONDS (60); `make fuzz-ci` runs
# each seed, then fuzzes each FUZZ_CI_SECONDS (1) — CI's check. FUZZ=name runs one target.
FUZZ_BUILD      ?= build-fuzz
FUZZ_SECONDS    ?= 60
FUZZ_CI_SECONDS ?= 1
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)

fuzz-build:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang OPENMP=0 OPT=-O1 SAN=address,undefined \
	    CFLAGS=-fsanitize=fuzzer-no-link fuzz-bins
fuzz-bins: $(FUZZ_BIN)
$(BUILD)/fuzz/%: fuzz/%.c fuzz/fuzz_common.h $(BUILD)/libretort.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -Isrc -o $@ $< $(BUILD)/libretort.a $(LDLIBS_ALL)

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ)
fuzz-ci: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz.sh $(FUZZ_CI_SECONDS) $(FUZZ)

# ---- install: the binary and its man page (docs/retort.1, made by `make man` from the help texts)
PREFIX  ?= /usr/local
DESTDIR ?=
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/retort $(DESTDIR)$(PREFIX)/bin/retort
	install -m 644 docs/retort.1 $(DESTDIR)$(PREFIX)/share/man/man1/retort.1
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/retort $(DESTDIR)$(PREFIX)/share/man/man1/retort.1
man: $(BUILD)/retort
	/usr/bin/python3 scripts/gen_man.py $(BUILD)/retort > docs/retort.1.tmp && mv docs/retort.1.tmp docs/retort.1

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
