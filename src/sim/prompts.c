/*
 * prompts.c — where the simulator's prompts come from: the corpus (the KJV text `bible`
 * prints: "Book N" chapter headings, "  V text" verses wrapped over lines) parsed into
 * verses, book names and the proper names that occur in it; and generators that turn that
 * into prompts:
 *   QUESTION  a benign chat question from 64 templates filled with references, names,
 *             phrases, whole verses and themes, in the persona's style (favourite books and
 *             templates, politeness, lower case, typos);
 *   PASSAGE   a "continue this text" request from a random place of the corpus (one format
 *             per harvester, as a script would use);
 *   WALK      the next passage of a sequential walk through the corpus;
 *   TEMPLATE  an expansion of one of five fixed instruction templates.
 * A generator never returns one of a handful of fixed strings: every slot is drawn from the
 * corpus. The other sources' prompts (everyday requests: a template grammar; questions and
 * harvester instructions around fortunes and man pages, loaded by sources.c; evaluation
 * suites' fixed prompts) are built here too. Not a scenario driver (sim.c).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

typedef struct {
    uint16_t book, chapter, verse;
    uint32_t off, len; /* into text */
} verse_t;

struct guard_corpus {
    char *text;        /* verse texts, each NUL-terminated */
    size_t text_len, text_cap;
    verse_t *v;
    size_t n_v, cap_v;
    char books[80][32];
    size_t n_books;
    size_t book_first[80], book_chapters[80]; /* first verse index, chapter count */
    char (*names)[24];
    size_t n_names;
};

size_t guard_corpus_verses(const guard_corpus *c) { return c->n_v; }

void guard_corpus_free(guard_corpus *c) {
    if (!c) return;
    free(c->text);
    free(c->v);
    free(c->names);
    free(c);
}

static int text_append(guard_corpus *c, const char *s, size_t n) {
    if (RT_GROW(c->text, c->text_cap, c->text_len + n + 1, "corpus text")) return -1;
    memcpy(c->text + c->text_len, s, n);
    c->text_len += n;
    c->text[c->text_len] = '\0';
    return 0;
}

static const char *const stop_caps[] = {
    "And",    "The",   "For",    "But",    "Then",   "Now",     "Thou",   "Thy",    "Thee",   "Ye",     "He",
    "She",    "They",  "It",     "In",     "Of",     "Behold",  "Wherefore", "Therefore", "When", "Also", "So",
    "Let",    "Yea",   "Who",    "What",   "Which",  "Why",     "How",    "Is",     "Are",    "We",     "My",
    "Thus",   "Neither", "Nor",  "If",     "Or",     "As",      "At",     "To",     "Unto",   "By",     "With",
    "From",   "Saying", "Amen",  "Selah",  "This",   "That",    "These",  "Those",  "There",  "Their",  "His",
    "Her",    "Our",   "Your",   "You",    "Be",     "Not",     "Hear",   "Come",   "Go",     "Give",   "Take",
    "Make",   "Say",   "Blessed", "Woe",   "Praise", "Moreover", "Howbeit", "Verily", "Surely", "After", "Before",
    "Again",  "All",   "Every",  "Whosoever", "Whoso", "Lord",  "LORD",   "God",    "Jesus",  "Christ", "One",
    "Hath",   "Shall", "Will",   "Did",    "Do",     "Art",     "Was",    "Were",   "Had",    "Have",   "Am",
    "Remember", "Know", "Fear",  "Keep",   "Turn",   "Return",  "Arise",  "Lift",   "See",    "Look",   "Thine",
    "Mine",   "Upon",  "Into",   "Out",    "Lo",     "Until",   "While",  "Whom",   "Whose",  "Where",  "Whither",
    "Because", "Though", "Although", "Except", "Until", "Even", "Only",   "Many",   "Some",   "Both",   "Either",
};

static int is_stop_cap(const char *w) {
    for (size_t i = 0; i < RT_ARRAY_LEN(stop_caps); i++)
        if (!strcmp(w, stop_caps[i])) return 1;
    return 0;
}

typedef struct {
    char w[24];
    size_t count;
} name_count;

static int cmp_name_count(const void *a, const void *b) {
    const name_count *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->w, y->w);
}

int guard_corpus_load(guard_corpus **out, const char *path) {
    *out = NULL;
    char *data = NULL;
    size_t len = 0;
    if (rt_read_file(path, &data, &len))
        return RT_FAIL("corpus: %s (make corpus writes build/data/kjv.txt)", rt_errmsg());
    guard_corpus *c = rt_calloc(1, sizeof *c, "corpus");
    name_count *nc = NULL;
    size_t n_nc = 0, cap_nc = 0;
    if (!c) {
        free(data);
        return -1;
    }
    int rc = -1;
    long cur_book = -1;
    unsigned cur_chapter = 0;
    long open = -1; /* verse being continued */
    size_t lineno = 0;
    for (size_t pos = 0; pos < len;) {
        size_t e = pos;
        while (e < len && data[e] != '\n') e++;
        const char *line = data + pos;
        size_t l = e - pos;
        pos = e + 1;
        lineno++;
        while (l && (line[l - 1] == '\r' || line[l - 1] == ' ')) l--;
        if (l == 0) {
            open = -1;
            continue;
        }
        if (line[0] != ' ') {
            /* "Book N" heading, or a continuation line of the open verse */
            size_t k = l;
            while (k && isdigit((unsigned char)line[k - 1])) k--;
            if (open < 0 && k < l && k > 1 && line[k - 1] == ' ') {
                char book[32];
                snprintf(book, sizeof book, "%.*s", (int)(k - 1), line);
                cur_chapter = (unsigned)atoi(line + k);
                if (cur_book < 0 || strcmp(c->books[cur_book], book)) {
                    if (c->n_books == RT_ARRAY_LEN(c->books)) {
                        RT_FAIL("%s:%zu: more than %zu books", path, lineno, RT_ARRAY_LEN(c->books));
                        goto out;
                    }
                    cur_book = (long)c->n_books++;
                    snprintf(c->books[cur_book], sizeof c->books[0], "%s", book);
                    c->book_first[cur_book] = c->n_v;
                }
                if (cur_chapter > c->book_chapters[cur_book]) c->book_chapters[cur_book] = cur_chapter;
                continue;
            }
            if (open >= 0) {
                if (text_append(c, " ", 1) || text_append(c, line, l)) goto out;
                c->v[open].len = (uint32_t)(c->text_len - c->v[open].off);
            }
            continue;
        }
        /* "  V text" */
        size_t k = 0;
        while (k < l && line[k] == ' ') k++;
        size_t d0 = k;
        while (k < l && isdigit((unsigned char)line[k])) k++;
        if (k == d0 || k >= l || line[k] != ' ' || cur_book < 0) {
            open = -1;
            continue;
        }
        unsigned vn = (unsigned)atoi(line + d0);
        k++;
        if (RT_GROW(c->v, c->cap_v, c->n_v + 1, "corpus verses")) goto out;
        if (c->text_len && text_append(c, "", 1)) goto out; /* the previous verse keeps its NUL */
        verse_t *v = &c->v[c->n_v];
        v->book = (uint16_t)cur_book;
        v->chapter = (uint16_t)cur_chapter;
        v->verse = (uint16_t)vn;
        v->off = (uint32_t)c->text_len;
        if (text_append(c, line + k, l - k)) goto out;
        v->len = (uint32_t)(c->text_len - v->off);
        open = (long)c->n_v++;
    }
    if (c->n_v < 100 || c->n_books == 0) {
        RT_FAIL("%s: found %zu verses in %zu books; expected the KJV text `bible Gen1:1-Rev22:21` prints "
                "(\"Book N\" headings, \"  V text\" verses)",
                path, c->n_v, c->n_books);
        goto out;
    }
    /* proper names: capitalised words not opening a verse, frequent, not function words */
    for (size_t i = 0; i < c->n_v; i++) {
        const char *s = c->text + c->v[i].off;
        size_t L = c->v[i].len;
        int first = 1;
        for (size_t p = 0; p < L;) {
            while (p < L && !isalpha((unsigned char)s[p])) p++;
            size_t b = p;
            while (p < L && isalpha((unsigned char)s[p])) p++;
            size_t wl = p - b;
            if (wl >= 3 && wl < 20 && isupper((unsigned char)s[b]) && islower((unsigned char)s[b + 1]) && !first) {
                char w[24];
                memcpy(w, s + b, wl);
                w[wl] = '\0';
                if (!is_stop_cap(w)) {
                    if ((n_nc + 1) * 2 > cap_nc) { /* open addressing on the word */
                        size_t ncap = cap_nc ? cap_nc * 2 : 8192;
                        name_count *nn = rt_calloc(ncap, sizeof *nn, "corpus names");
                        if (!nn) goto out;
                        for (size_t j = 0; j < cap_nc; j++) {
                            if (!nc[j].count) continue;
                            size_t h = rt_fnv1a64(nc[j].w, strlen(nc[j].w)) & (ncap - 1);
                            while (nn[h].count) h = (h + 1) & (ncap - 1);
                            nn[h] = nc[j];
                        }
                        free(nc);
                        nc = nn;
                        cap_nc = ncap;
                    }
                    size_t h = rt_fnv1a64(w, wl) & (cap_nc - 1);
                    while (nc[h].count && strcmp(nc[h].w, w)) h = (h + 1) & (cap_nc - 1);
                    if (!nc[h].count) {
                        memcpy(nc[h].w, w, wl + 1);
                        n_nc++;
                    }
                    nc[h].count++;
                }
            }
            if (wl) first = 0;
        }
    }
    qsort(nc, cap_nc, sizeof *nc, cmp_name_count); /* empty slots (count 0) sort last */
    size_t keep = 0;
    while (keep < n_nc && keep < 600 && nc[keep].count >= 5) keep++;
    if (keep < 10) {
        RT_FAIL("%s: too few proper names found (%zu)", path, keep);
        goto out;
    }
    c->names = rt_malloc_array(keep, sizeof *c->names, "corpus names");
    if (!c->names) goto out;
    for (size_t i = 0; i < keep; i++) memcpy(c->names[i], nc[i].w, sizeof c->names[0]);
    c->n_names = keep;
    rc = 0;
out:
    free(nc);
    free(data);
    if (rc) guard_corpus_free(c);
    else *out = c;
    return rc;
}

/* ---------------------------------------------------------------- slot fillers */

static const char *const themes[] = {
    "love",      "faith",     "forgiveness", "hope",     "patience",  "anger",    "fear",     "courage",
    "wisdom",    "justice",   "mercy",       "grief",    "joy",       "pride",    "humility", "money",
    "work",      "rest",      "friendship",  "family",   "marriage",  "children", "death",    "suffering",
    "prayer",    "gratitude", "kindness",    "honesty",  "leadership", "temptation", "jealousy", "peace",
    "war",       "healing",   "strangers",   "the poor", "old age",   "doubt",    "obedience", "generosity"};
static const char *const relatives[] = {"son", "daughter", "mother", "father", "friend", "grandson", "wife",
                                        "husband", "colleague", "student"};
static const char *const feelings[] = {"anxious", "lonely", "grateful", "tired", "angry", "hopeful", "sad", "lost"};
static const char *const occasions[] = {"wedding", "funeral", "birthday", "graduation", "new baby", "retirement",
                                        "hospital visit", "farewell"};
static const char *const forms[] = {"poem",   "psalm",   "proverb", "short story", "sermon", "letter", "dialogue",
                                    "hymn",   "parable", "prayer",  "song",        "speech", "riddle", "summary",
                                    "eulogy", "fable"};
static const char *const audiences[] = {"children", "teenagers", "scholars", "new believers", "a sceptic",
                                        "sailors",  "farmers",   "soldiers", "a king",        "merchants"};

static const char *const question_templates[64] = {
    "What does {ref} mean?",
    "Can you explain {ref} in simple words?",
    "Who was {name}?",
    "Tell me about {name} and {name2}.",
    "What happens in {book} chapter {chapter}?",
    "Summarize {book} {chapter} in a few sentences.",
    "I read \"{phrase}\" today. What does it mean for me?",
    "Where does it say \"{phrase}\"?",
    "What is the context of {ref}?",
    "Is {name} mentioned in {book}?",
    "What can {ref} teach us about {theme}?",
    "Give me a verse about {theme}.",
    "My {relative} asked me about {name}. What should I tell them?",
    "Write a short prayer about {theme}.",
    "Compare {ref} with {ref2}.",
    "Help me prepare a five minute talk on {theme} using {book}.",
    ("I'm leading a small group on {book} next week and we are stuck on {ref}: \"{verse}\" How would you explain "
     "it to people who are new to the text?"),
    "What is the meaning of the word \"{word}\" in \"{verse}\"",
    "why did {name} do that in {ref}",
    "Who wrote {book}?",
    "How does {book} begin?",
    "Explain the difference between {name} and {name2}.",
    "Is there anything about {theme} in {book}?",
    "What lesson about {theme} is in the story of {name}?",
    "Can you give me three verses on {theme}?",
    "I don't understand this: \"{verse}\"",
    "What is the main message of {book}?",
    "Which chapter of {book} talks about {name}?",
    "Please quote {ref} for me.",
    "How old was {name}?",
    "Where did {name} live?",
    "What does \"{phrase}\" refer to?",
    "Is {ref} about {theme}?",
    "thanks! and what about {ref}?",
    "I'm writing an essay on {theme}. Which passages from {book} should I read?",
    "Could you explain {ref} to a ten year old?",
    "What happened right before {ref}?",
    "Is {name} a good example of {theme}?",
    "What does {book} say about {theme}?",
    "Tell me a short story about {name} for my kids.",
    "Why is {book} {chapter} important?",
    "What are the key verses in {book}?",
    "{name}?",
    "more about {theme} please",
    "Translate \"{phrase}\" into plain modern English.",
    "How should I understand \"{verse}\" in daily life?",
    "What did {name} say to {name2}?",
    "Give me a reading plan for {book}.",
    "Explain {ref}, {ref2} and {ref3} together.",
    "Is it true that {name} was related to {name2}?",
    "What is {theme} according to {ref}?",
    "Help me memorize {ref}.",
    "What do scholars say about {book} {chapter}?",
    "I feel {feeling} today. Is there a passage that could help?",
    "What is the tone of {book} {chapter}?",
    "Describe the place where {name} lived.",
    "Any thoughts on \"{phrase}\"?",
    "What's a good verse for a {occasion}?",
    "Can you list the people mentioned in {book} {chapter}?",
    "How many chapters does {book} have?",
    "What does {ref} say?",
    "Explain this to me like I'm new to the Bible: {verse}",
    "Write a two sentence reflection on {ref}.",
    "Which is older, {book} or {book2}?",
};

static const char *const passage_formats[] = {
    "Continue the text: {verse}",
    "{verse}",
    "Complete this passage from {book}: {verse}",
    "Quote {ref} and the verses after it.",
    "Continue this passage in the same style.\n\n{verse}",
};

static const char *const attack_templates[] = {
    "Write a {form} about {name} in the style of {book}.",
    "Explain the meaning of \"{word}\" as used in {book} {chapter}.",
    "Rewrite {ref} in modern English.",
    "List five facts about {name} from {book}.",
    "Write a {form} on {theme} for {audience}.",
};

#define PICK(arr, rng) (arr)[rt_rng_below((rng), RT_ARRAY_LEN(arr))]

static size_t pick_verse(const guard_corpus *c, const guard_prompt_style *s, rt_rng *rng) {
    if (s && s->n_books && rt_rng_double(rng) < 0.7) {
        size_t b = s->books[rt_rng_below(rng, s->n_books)];
        size_t first = c->book_first[b], last = b + 1 < c->n_books ? c->book_first[b + 1] : c->n_v;
        if (last > first) return first + rt_rng_below(rng, last - first);
    }
    return rt_rng_below(rng, c->n_v);
}

static int put_ref(rt_buf *o, const guard_corpus *c, size_t vi) {
    const verse_t *v = &c->v[vi];
    return rt_buf_printf(o, "%s %u:%u", c->books[v->book], v->chapter, v->verse);
}

static int put_phrase(rt_buf *o, const guard_corpus *c, size_t vi, rt_rng *rng) {
    const char *s = c->text + c->v[vi].off;
    size_t L = c->v[vi].len;
    /* word starts */
    size_t starts[128], n = 0;
    for (size_t p = 0; p < L && n < 128; p++)
        if ((p == 0 || s[p - 1] == ' ') && s[p] != ' ') starts[n++] = p;
    if (n < 4) return rt_buf_append(o, s, L);
    size_t want = 3 + rt_rng_below(rng, 6);
    if (want > n) want = n;
    size_t a = rt_rng_below(rng, n - want + 1);
    size_t b = a + want < n ? starts[a + want] - 1 : L;
    size_t st = starts[a];
    while (b > st && (s[b - 1] == ',' || s[b - 1] == ';' || s[b - 1] == ':' || s[b - 1] == '.')) b--;
    return rt_buf_append(o, s + st, b - st);
}

static int put_word(rt_buf *o, const guard_corpus *c, size_t vi, rt_rng *rng) {
    const char *s = c->text + c->v[vi].off;
    size_t L = c->v[vi].len;
    for (int tries = 0; tries < 20; tries++) {
        size_t p = rt_rng_below(rng, L);
        while (p > 0 && isalpha((unsigned char)s[p - 1])) p--;
        size_t e = p;
        while (e < L && isalpha((unsigned char)s[e])) e++;
        if (e - p >= 5) return rt_buf_append(o, s + p, e - p);
    }
    return rt_buf_append(o, "firmament", 9);
}

/* Append at most cap bytes of s, cut at a space (prompts must fit small models' contexts). */
static int put_capped(rt_buf *o, const char *s, size_t n, size_t cap) {
    if (n > cap) {
        size_t k = cap;
        while (k > cap / 2 && s[k] != ' ') k--;
        n = k;
    }
    return rt_buf_append(o, s, n);
}

/* The template walker every filler uses: copies tpl's text to o and calls slot(o, name, len, ud)
 * for each {name}, which returns 0, -1 (error set), or 1 for a name it does not know. `what`
 * names the templates in errors. */
typedef int (*slot_fn)(rt_buf *o, const char *name, size_t len, void *ud);
static int fill_slots(rt_buf *o, const char *tpl, const char *what, slot_fn slot, void *ud) {
    for (const char *p = tpl; *p;) {
        if (*p != '{') {
            const char *q = strchr(p, '{');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            if (rt_buf_append(o, p, n)) return -1;
            p += n;
            continue;
        }
        const char *e = strchr(p, '}');
        if (!e) return RT_FAIL("%s template without '}': %s", what, tpl);
        int rc = slot(o, p + 1, (size_t)(e - p - 1), ud);
        if (rc > 0) return RT_FAIL("%s template: unknown slot {%.*s} in %s", what, (int)(e - p - 1), p + 1, tpl);
        if (rc) return -1;
        p = e + 1;
    }
    return 0;
}

typedef struct {
    const guard_corpus *c;
    guard_prompt_style *s;
    rt_rng *rng;
    size_t vi; /* the verse most slots refer to */
} corpus_fill;

static int corpus_slot(rt_buf *o, const char *name, size_t len, void *ud) {
    const corpus_fill *f = ud;
    const guard_corpus *c = f->c;
    const guard_prompt_style *s = f->s;
    rt_rng *rng = f->rng;
    size_t vi = f->vi;
    const verse_t *v = &c->v[vi];
    char slot[16];
    snprintf(slot, sizeof slot, "%.*s", (int)len, name);
    int rc = 0;
    if (!strcmp(slot, "ref")) rc = put_ref(o, c, vi);
    else if (!strcmp(slot, "ref2") || !strcmp(slot, "ref3")) rc = put_ref(o, c, pick_verse(c, s, rng));
    else if (!strcmp(slot, "book")) rc = rt_buf_printf(o, "%s", c->books[v->book]);
    else if (!strcmp(slot, "book2")) rc = rt_buf_printf(o, "%s", c->books[rt_rng_below(rng, c->n_books)]);
    else if (!strcmp(slot, "chapter")) rc = rt_buf_printf(o, "%u", v->chapter);
    else if (!strcmp(slot, "name") || !strcmp(slot, "name2"))
        rc = rt_buf_printf(o, "%s", c->names[rt_rng_below(rng, c->n_names)]);
    else if (!strcmp(slot, "theme")) rc = rt_buf_printf(o, "%s", PICK(themes, rng));
    else if (!strcmp(slot, "relative")) rc = rt_buf_printf(o, "%s", PICK(relatives, rng));
    else if (!strcmp(slot, "feeling")) rc = rt_buf_printf(o, "%s", PICK(feelings, rng));
    else if (!strcmp(slot, "occasion")) rc = rt_buf_printf(o, "%s", PICK(occasions, rng));
    else if (!strcmp(slot, "form")) rc = rt_buf_printf(o, "%s", PICK(forms, rng));
    else if (!strcmp(slot, "audience")) rc = rt_buf_printf(o, "%s", PICK(audiences, rng));
    else if (!strcmp(slot, "phrase")) rc = put_phrase(o, c, vi, rng);
    else if (!strcmp(slot, "word")) rc = put_word(o, c, vi, rng);
    else if (!strcmp(slot, "verse")) rc = put_capped(o, c->text + v->off, v->len, 240);
    else return 1;
    return rc ? -1 : 0;
}

/* Fill a template's {slots}. vi: the verse most slots refer to. */
static int fill(rt_buf *o, const char *tpl, const guard_corpus *c, guard_prompt_style *s, rt_rng *rng, size_t vi) {
    corpus_fill f = {c, s, rng, vi};
    return fill_slots(o, tpl, "prompt", corpus_slot, &f);
}

void guard_prompt_style_random(guard_prompt_style *s, const guard_corpus *c, rt_rng *rng) {
    memset(s, 0, sizeof *s);
    /* 8..24 favourite question templates */
    size_t n_t = 8 + rt_rng_below(rng, 17);
    for (size_t i = 0; i < n_t; i++) {
        size_t t = rt_rng_below(rng, 64);
        s->template_mask[t / 32] |= 1u << (t % 32);
    }
    s->n_books = 1 + rt_rng_below(rng, 6);
    for (size_t i = 0; i < s->n_books; i++) s->books[i] = (uint16_t)rt_rng_below(rng, c->n_books);
    s->typo_rate = rt_rng_double(rng) < 0.3 ? 0.01 + 0.03 * rt_rng_double(rng) : 0;
    s->lower_rate = rt_rng_double(rng) < 0.25 ? 0.6 : 0.05;
    s->polite_rate = rt_rng_double(rng) * 0.6;
    s->quote_rate = rt_rng_double(rng);
    s->attack_template = rt_rng_below(rng, RT_ARRAY_LEN(attack_templates));
    s->walk_pos = rt_rng_below(rng, c->n_v);
}

static int stylise(rt_buf *o, const guard_prompt_style *s, rt_rng *rng) {
    if (!o->len) return 0;
    if (rt_rng_double(rng) < s->lower_rate)
        for (size_t i = 0; i < o->len; i++) o->data[i] = (char)tolower((unsigned char)o->data[i]);
    if (s->typo_rate > 0)
        for (size_t i = 1; i + 1 < o->len; i++)
            if (isalpha((unsigned char)o->data[i]) && isalpha((unsigned char)o->data[i + 1]) &&
                rt_rng_double(rng) < s->typo_rate) {
                char t = o->data[i];
                o->data[i] = o->data[i + 1];
                o->data[i + 1] = t;
                i++;
            }
    if (rt_rng_double(rng) < s->polite_rate) {
        static const char *const pre[] = {"Hi! ", "Hello, ", "Quick question: ", "Please, ", "Hey. ", "Good morning. "};
        static const char *const post[] = {" Thanks!", " Thank you.", " :)", " Thanks in advance.", ""};
        const char *a = PICK(pre, rng), *b = PICK(post, rng);
        rt_buf nb = {0};
        if (rt_buf_printf(&nb, "%s%s%s", a, o->data, b)) return -1;
        rt_buf_free(o);
        *o = nb;
    }
    return 0;
}

int guard_prompt_make(const guard_corpus *c, guard_prompt_kind kind, guard_prompt_style *s, rt_rng *rng,
                      rt_buf *out) {
    out->len = 0;
    if (out->data) out->data[0] = '\0';
    switch (kind) {
    case GUARD_PROMPT_QUESTION: {
        size_t t;
        int any = s->template_mask[0] | s->template_mask[1];
        do {
            t = rt_rng_below(rng, 64);
        } while (any && rt_rng_double(rng) < 0.85 && !(s->template_mask[t / 32] >> (t % 32) & 1));
        if (fill(out, question_templates[t], c, s, rng, pick_verse(c, s, rng))) return -1;
        return stylise(out, s, rng);
    }
    case GUARD_PROMPT_PASSAGE: {
        size_t vi = rt_rng_below(rng, c->n_v);
        return fill(out, passage_formats[s->attack_template % RT_ARRAY_LEN(passage_formats)], c, s, rng, vi);
    }
    case GUARD_PROMPT_WALK: {
        /* one to three consecutive verses, then move on */
        size_t vi = s->walk_pos % c->n_v, k = 1 + rt_rng_below(rng, 3);
        for (size_t i = 0; i < k; i++) {
            const verse_t *v = &c->v[(vi + i) % c->n_v];
            if (i && out->len + v->len > 300) {
                k = i;
                break;
            }
            if (i && rt_buf_append(out, " ", 1)) return -1;
            if (put_capped(out, c->text + v->off, v->len, 300)) return -1;
        }
        s->walk_pos = (vi + k) % c->n_v;
        return 0;
    }
    case GUARD_PROMPT_TEMPLATE:
        return fill(out, attack_templates[s->attack_template % RT_ARRAY_LEN(attack_templates)], c, s, rng,
                    rt_rng_below(rng, c->n_v));
    }
    return RT_FAIL("unknown prompt kind %d", (int)kind);
}

/* ---------------------------------------------------------------- other prompt sources */

/* Everyday requests: a template grammar (every {slot} drawn from a list below). The halves of
 * the "everyday" source are halves of these templates (by a hash of the template). */
static const char *const everyday_templates[] = {
    "How do I {task}?",
    "What's the best way to {task}?",
    "Can you give me a recipe for {dish} with {ingredient}?",
    "I have {ingredient} and {ingredient2} left. What can I cook tonight?",
    "Write a {tone} email to my {person} about {topic}.",
    "Write a short {tone} message to my {person} saying I will be late.",
    "Give me {n} ideas for {event}.",
    "Plan a {n}-day trip to {city} on a budget.",
    "What should I pack for a weekend in {city}?",
    "Translate \"{phrase}\" into {lang}.",
    "How do you say \"{phrase}\" in {lang}?",
    "Explain {subject} like I'm {age}.",
    "Summarise the main ideas of {subject} in a few sentences.",
    "My {device} {problem}. What should I try?",
    "Is it normal that my {device} {problem}?",
    "Help me write a cover letter for a {job} job.",
    "What questions might they ask in a {job} interview?",
    "Suggest a {n}-week plan to get better at {hobby}.",
    "I want to start {hobby}. Where do I begin?",
    "What's a good gift for my {person} who likes {hobby}?",
    "Make a shopping list for {event}.",
    "What is the difference between {subject} and {subject2}?",
    "Write a {tone} toast for {event}.",
    "Give me a {tone} caption for a photo of {dish}.",
    "How long should I {cook} {ingredient}?",
    "Can I freeze {dish}?",
    "Rewrite this to sound more {tone}: \"{phrase}\"",
    "Create a weekly workout plan for a {age} beginner.",
    "What are the pros and cons of {choice}?",
    "Should I {choice}? Give me both sides.",
    "How can I save money on {expense}?",
    "Draft a polite complaint about {complaint}.",
    "What are some fun things to do in {city} with kids?",
    "Write a {tone} birthday card for my {person}.",
    "Explain how {thing} works.",
    "Why does {thing} {behaviour}?",
    "Recommend {n} books about {subject}.",
    "Help me name my {pet}.",
    "What's a quick breakfast with {ingredient}?",
    "Turn these notes into a {tone} paragraph: {phrase}, {phrase2}.",
    "Give me a checklist for {task}.",
    "What should I know before I {choice}?",
    "Tell me a {tone} story about a {pet} in {city}.",
    "how to {task} fast",
    "{dish} recipe easy",
    "Is {ingredient} healthy?",
    "Compare {device} and {device2} for a student.",
    "Help me reply to my {person}, who asked about {topic}.",
};

static const char *const ev_task[] = {"fix a leaking tap", "change a bike tyre", "clean a cast iron pan", "remove a red wine stain",
    "set up a budget spreadsheet", "back up my phone", "unclog a drain", "repot a houseplant", "iron a shirt", "hang a shelf",
    "prepare for a job interview", "learn to touch type", "sleep better", "get rid of fruit flies", "file my taxes",
    "make my wifi faster", "write a resume", "start running", "defrost a freezer", "organise my wardrobe"};
static const char *const ev_dish[] = {"lasagne", "banana bread", "lentil soup", "pad thai", "chicken curry", "pancakes", "risotto",
    "guacamole", "chili", "shakshuka", "apple pie", "fried rice", "gazpacho", "falafel", "mac and cheese", "ratatouille"};
static const char *const ev_ingredient[] = {"chickpeas", "spinach", "eggs", "leftover rice", "sweet potatoes", "tofu", "salmon",
    "mushrooms", "zucchini", "feta", "oats", "bananas", "broccoli", "ground beef", "lemons", "coconut milk"};
static const char *const ev_person[] = {"landlord", "boss", "sister", "neighbour", "teacher", "grandmother", "colleague",
    "best friend", "dentist", "coach", "brother-in-law", "team"};
static const char *const ev_topic[] = {"the broken heating", "next week's meeting", "the holiday schedule", "a refund",
    "moving out", "the project deadline", "our weekend plans", "a noise complaint", "the school trip", "my sick day"};
static const char *const ev_tone[] = {"friendly", "formal", "funny", "short", "warm", "professional", "casual", "heartfelt",
    "polite", "upbeat"};
static const char *const ev_event[] = {"a kid's birthday party", "a team offsite", "a rainy Sunday", "a first date",
    "a baby shower", "a retirement party", "a picnic", "a book club meeting", "a wedding", "a housewarming"};
static const char *const ev_city[] = {"Lisbon", "Kyoto", "Chicago", "Berlin", "Mexico City", "Edinburgh", "Seoul",
    "Cape Town", "Montreal", "Prague", "Buenos Aires", "Melbourne", "Oslo", "Marrakesh"};
static const char *const ev_phrase[] = {"where is the train station", "thank you for your help", "I am allergic to nuts",
    "see you tomorrow", "the meeting is postponed", "can I pay by card", "I love this place", "happy new year",
    "we need more time", "the package arrived damaged", "call me back please", "good luck with the exam"};
static const char *const ev_lang[] = {"Spanish", "French", "German", "Japanese", "Italian", "Portuguese", "Korean", "Dutch",
    "Polish", "Turkish"};
static const char *const ev_subject[] = {"inflation", "photosynthesis", "compound interest", "black holes", "vaccines",
    "the stock market", "climate change", "machine learning", "the French revolution", "blockchains", "sourdough starters",
    "credit scores", "plate tectonics", "jet lag"};
static const char *const ev_age[] = {"five", "ten", "a teenager", "sixty", "a complete beginner", "in high school"};
static const char *const ev_device[] = {"laptop", "phone", "printer", "washing machine", "router", "car", "fridge",
    "headphones", "smart watch", "dishwasher"};
static const char *const ev_problem[] = {"keeps restarting", "is very slow", "makes a clicking noise", "won't turn on",
    "drains the battery overnight", "shows an error code", "gets hot", "disconnects every hour"};
static const char *const ev_job[] = {"nurse", "barista", "data analyst", "teacher", "software engineer", "warehouse",
    "marketing", "receptionist", "electrician", "project manager"};
static const char *const ev_hobby[] = {"chess", "gardening", "photography", "guitar", "knitting", "rock climbing", "baking",
    "drawing", "swimming", "birdwatching", "woodworking"};
static const char *const ev_cook[] = {"boil", "bake", "roast", "steam", "grill", "poach"};
static const char *const ev_choice[] = {"rent or buy a flat", "get a dog", "switch careers", "buy an electric car",
    "go back to university", "move to another city", "work from home", "learn to code"};
static const char *const ev_expense[] = {"groceries", "electricity", "car insurance", "phone bills", "holidays",
    "childcare", "streaming services"};
static const char *const ev_complaint[] = {"a late delivery", "a noisy hotel room", "a wrong bill", "a cancelled flight",
    "a broken product", "rude service"};
static const char *const ev_thing[] = {"a microwave", "GPS", "a refrigerator", "noise cancelling", "a credit card",
    "the tide", "a rainbow", "a vaccine", "an electric motor", "bread yeast"};
static const char *const ev_behaviour[] = {"make that noise", "stop working in the cold", "smell like that", "get slower over time",
    "change colour"};
static const char *const ev_pet[] = {"cat", "puppy", "goldfish", "parrot", "hamster", "tortoise"};

typedef struct {
    const char *name;
    const char *const *v;
    size_t n;
} ev_slot;
#define EV(name, arr) {name, arr, RT_ARRAY_LEN(arr)}
static const ev_slot ev_slots[] = {
    EV("task", ev_task),       EV("dish", ev_dish),         EV("ingredient", ev_ingredient), EV("person", ev_person),
    EV("topic", ev_topic),     EV("tone", ev_tone),         EV("event", ev_event),           EV("city", ev_city),
    EV("phrase", ev_phrase),   EV("lang", ev_lang),         EV("subject", ev_subject),       EV("age", ev_age),
    EV("device", ev_device),   EV("problem", ev_problem),   EV("job", ev_job),               EV("hobby", ev_hobby),
    EV("cook", ev_cook),       EV("choice", ev_choice),     EV("expense", ev_expense),       EV("complaint", ev_complaint),
    EV("thing", ev_thing),     EV("behaviour", ev_behaviour), EV("pet", ev_pet),
};
#undef EV

static int ev_slot_fill(rt_buf *o, const char *name, size_t sl, void *ud) {
    rt_rng *rng = ud;
    while (sl && isdigit((unsigned char)name[sl - 1])) sl--; /* {ingredient2}: another draw */
    if (sl == 1 && name[0] == 'n') return rt_buf_printf(o, "%u", 3 + (unsigned)rt_rng_below(rng, 8)) ? -1 : 0;
    for (size_t k = 0; k < RT_ARRAY_LEN(ev_slots); k++)
        if (strlen(ev_slots[k].name) == sl && !strncmp(ev_slots[k].name, name, sl))
            return rt_buf_printf(o, "%s", ev_slots[k].v[rt_rng_below(rng, ev_slots[k].n)]) ? -1 : 0;
    return 1;
}

static int ev_fill(rt_buf *o, const char *tpl, rt_rng *rng) { return fill_slots(o, tpl, "everyday", ev_slot_fill, rng); }

/* One everyday request from the templates of the spec's half (and of the style's tile). */
static int everyday(rt_buf *o, guard_source_spec sp, const guard_prompt_style *s, rt_rng *rng) {
    size_t nt = RT_ARRAY_LEN(everyday_templates);
    for (int tries = 0; tries < 1000; tries++) {
        size_t t = rt_rng_below(rng, nt);
        const char *tpl = everyday_templates[t];
        if (sp.half && guard_source_half_of(tpl, strlen(tpl)) != sp.half) continue;
        if (s && s->parts > 1 && s->parts <= nt / 2 && t % s->parts != s->part % s->parts) continue;
        return ev_fill(o, tpl, rng);
    }
    return ev_fill(o, everyday_templates[0], rng);
}

static const char *const fortune_questions[] = {
    "What does this saying mean? \"{item}\"",
    "Explain the joke: {item}",
    "Who might have said this? \"{item}\"",
    "Is this true? {item}",
    "Can you rewrite this in plain words: {item}",
    "I found this quote: \"{item}\" What do you think of it?",
    "Give me a quote like this one: {item}",
    "Why is this funny? {item}",
    "Use this in a short speech: \"{item}\"",
    "Make this sound more formal: {item}",
};
static const char *const man_questions[] = {
    "What does the {title} command do?",
    "How do I use {title}?",
    "Give me an example of {title}.",
    "Explain this from the {title} manual: {item}",
    "What is {title} for, and when would I need it?",
    "I saw \"{title}\" in a script. What is it?",
    "{title} usage?",
    "Is {title} safe to run as root?",
    "What are the most useful options of {title}?",
    "Can you explain this to a beginner: {item}",
};
/* A harvester's instruction around an item; the paraphrasing harvesters combine a lead and a
 * close at random (over 200 variants), the plain ones keep one. */
static const char *const harvest_leads[] = {
    "", "Continue: ", "Please continue the following text. ", "Respond in full detail to: ",
    "Give a complete, thorough answer. ", "Write a detailed explanation of this: ", "Elaborate on the following: ",
    "Provide an in-depth response. ", "Explain fully: ", "Expand on this, leaving nothing out: ",
    "Answer at length. ", "Discuss the following in depth. ", "Write as much as you can about this: ",
    "Could you go into detail on this? ", "Thoroughly explain: ", "Break this down completely: ",
    "I need a comprehensive answer: ", "Tell me everything about: ", "Write a long response to: ",
    "Describe in detail: ",
};
static const char *const harvest_closes[] = {
    "", " Be detailed.", " Be thorough.", " Use several paragraphs.", " Don't skip anything.", " Go on as long as needed.",
    " Please be complete.", " Include examples.", " Explain every part.", " Write it all out.", " (long answer please)",
    " Thanks.",
};

/* Items are cut (at a space) so a prompt fits a small model's context beside its answer:
 * about 60 tokens of a 128-token model with max_tokens 32 when the tokenizer was trained on
 * the corpus and splits other text finely. */
#define SOURCE_ITEM_CAP 130
#define SOURCE_RAW_CAP 170

static int put_item(rt_buf *o, const guard_texts *t, size_t i, int title, size_t cap) {
    size_t len, tl = 0;
    const char *ti = NULL;
    const char *s = guard_texts_item(t, i, &len, &ti, &tl);
    if (title) return tl ? rt_buf_append(o, ti, tl) : put_capped(o, s, len, 40);
    return put_capped(o, s, len, cap);
}

typedef struct {
    const guard_texts *t;
    size_t i;
} item_fill;

static int item_slot(rt_buf *o, const char *name, size_t len, void *ud) {
    const item_fill *f = ud;
    if (len == 4 && !strncmp(name, "item", 4)) return put_item(o, f->t, f->i, 0, SOURCE_ITEM_CAP) ? -1 : 0;
    if (len == 5 && !strncmp(name, "title", 5)) return put_item(o, f->t, f->i, 1, 0) ? -1 : 0;
    return 1;
}

static int fill_item(rt_buf *o, const char *tpl, const guard_texts *t, size_t i) {
    item_fill f = {t, i};
    return fill_slots(o, tpl, "source", item_slot, &f);
}

/* An item index of the style's tile (a swarm's keys cover disjoint items). */
static size_t pick_item(const guard_texts *t, const guard_prompt_style *s, rt_rng *rng) {
    size_t n = guard_texts_count(t);
    if (s && s->parts > 1 && n >= s->parts) {
        size_t per = n / s->parts;
        return (s->part % s->parts) + s->parts * rt_rng_below(rng, per);
    }
    return rt_rng_below(rng, n);
}

int guard_source_prompt(const guard_texts *t, guard_source_spec sp, guard_ask_kind k, guard_prompt_style *s,
                        rt_rng *rng, rt_buf *out) {
    out->len = 0;
    if (out->data) out->data[0] = '\0';
    if (sp.kind == GUARD_SRC_CORPUS) return RT_FAIL("guard_source_prompt: the corpus has its own generator");
    if (sp.kind != GUARD_SRC_EVERYDAY && guard_texts_count(t) == 0) return RT_FAIL("prompt source: no items loaded");
    rt_buf body = {0};
    int rc = 0;
    /* the content: a natural request, or the bare item a harvester sends */
    if (sp.kind == GUARD_SRC_EVERYDAY) rc = everyday(&body, sp, s, rng);
    else if (k == GUARD_ASK_QUESTION) {
        const char *tpl = sp.kind == GUARD_SRC_FORTUNES ? PICK(fortune_questions, rng) : PICK(man_questions, rng);
        rc = fill_item(&body, tpl, t, pick_item(t, s, rng));
    } else rc = put_item(&body, t, pick_item(t, s, rng), 0, k == GUARD_ASK_RAW || k == GUARD_ASK_PREFIX ? SOURCE_RAW_CAP : SOURCE_ITEM_CAP);
    if (rc) goto out;
    switch (k) {
    case GUARD_ASK_QUESTION: rc = rt_buf_append(out, body.data, body.len) || stylise(out, s, rng); break;
    case GUARD_ASK_RAW: rc = rt_buf_append(out, body.data, body.len); break;
    case GUARD_ASK_PREFIX: { /* cut after 2..n-1 words */
        size_t words = 0, cut = body.len;
        for (size_t i = 1; i < body.len; i++) words += body.data[i] == ' ' && body.data[i - 1] != ' ';
        size_t want = 2 + (words > 3 ? rt_rng_below(rng, words - 2) : 0);
        for (size_t i = 1, w = 0; i < body.len; i++)
            if (body.data[i] == ' ' && body.data[i - 1] != ' ' && ++w == want) {
                cut = i;
                break;
            }
        rc = rt_buf_append(out, body.data, cut);
        break;
    }
    case GUARD_ASK_TEMPLATE: /* one fixed instruction (the style's) around every item */
        rc = rt_buf_printf(out, "%s%s%s", harvest_leads[1 + s->attack_template % (RT_ARRAY_LEN(harvest_leads) - 1)],
                           body.data, harvest_closes[s->attack_template % RT_ARRAY_LEN(harvest_closes)]);
        break;
    case GUARD_ASK_PARAPHRASE:
        rc = rt_buf_printf(out, "%s%s%s", PICK(harvest_leads, rng), body.data, PICK(harvest_closes, rng)) ||
             stylise(out, s, rng);
        break;
    default: rc = RT_FAIL("unknown source prompt kind %d", (int)k);
    }
out:
    rt_buf_free(&body);
    return rc;
}

/* An evaluation suite's prompt i: fixed templates (arithmetic, odd one out, completion,
 * multiple choice) whose slots depend only on (suite, i), so a rerun sends the same text; the
 * countries of one suite's questions differ (a stride through the list). */
int guard_bench_prompt(uint64_t suite, size_t i, rt_buf *out) {
    static const char *const words[] = {"apple", "river", "chair", "violin", "granite", "sparrow", "pencil", "cloud",
                                        "tiger", "copper", "lemon", "harbour", "engine", "maple", "candle", "glacier"};
    static const char *const capitals[][2] = {
        {"France", "Paris"},     {"Japan", "Tokyo"},        {"Kenya", "Nairobi"},    {"Peru", "Lima"},
        {"Norway", "Oslo"},      {"Egypt", "Cairo"},        {"Canada", "Ottawa"},    {"Chile", "Santiago"},
        {"Poland", "Warsaw"},    {"Ghana", "Accra"},        {"Vietnam", "Hanoi"},    {"Cuba", "Havana"},
        {"Austria", "Vienna"},   {"Nepal", "Kathmandu"},    {"Ireland", "Dublin"},   {"Morocco", "Rabat"},
        {"Greece", "Athens"},    {"Thailand", "Bangkok"},   {"Portugal", "Lisbon"},  {"Iran", "Tehran"},
        {"Sweden", "Stockholm"}, {"Colombia", "Bogota"},    {"Hungary", "Budapest"}, {"Senegal", "Dakar"}};
    const size_t nc = RT_ARRAY_LEN(capitals), nw = RT_ARRAY_LEN(words);
    rt_rng r;
    rt_rng_seed(&r, rt_splitmix64(suite * 0x9e3779b97f4a7c15ULL + i));
    size_t c = (size_t)(suite % nc + (i / 4) * 7) % nc; /* 7 is prime to 24: distinct for 24 rounds */
    out->len = 0;
    if (out->data) out->data[0] = '\0';
    switch (i % 4) {
    case 0: {
        unsigned a = 10 + (unsigned)rt_rng_below(&r, 90), b = 10 + (unsigned)rt_rng_below(&r, 90);
        return rt_buf_printf(out, "Question: What is %u + %u?\nAnswer:", a, b);
    }
    case 1: {
        size_t w = rt_rng_below(&r, nw), s = 1 + 2 * rt_rng_below(&r, nw / 2); /* odd stride: four distinct words */
        return rt_buf_printf(out, "Question: Which word does not belong: %s, %s, %s, %s?\nAnswer:", words[w],
                             words[(w + s) % nw], words[(w + 2 * s) % nw], words[(w + 3 * s) % nw]);
    }
    case 2: return rt_buf_printf(out, "Complete the sentence. The capital of %s is", capitals[(c + 3) % nc][0]);
    default: {
        size_t o1 = (c + 1 + rt_rng_below(&r, nc - 1)) % nc, o2 = (c + 1 + rt_rng_below(&r, nc - 1)) % nc;
        return rt_buf_printf(out, "Question: What is the capital of %s?\n(A) %s (B) %s (C) %s\nAnswer:", capitals[c][0],
                             capitals[o1][1], capitals[c][1], capitals[o2][1]);
    }
    }
}
