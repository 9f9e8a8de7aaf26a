// Writes the two small English-like texts that examples/gpt trains on, from grammars of our own:
//
//   world.txt    pretraining text: short paragraphs of plain sentences about people, objects,
//                colours, numbers (with correct little sums) and places in a town.
//   recipes.txt  fine-tuning text, another style and domain: recipes with a title, a serving line,
//                an ingredient list and numbered steps that use those ingredients.
//
// Every choice comes from a fixed-seed splitmix64 generator (no std:: distributions, whose output
// differs between standard libraries), so the files are the same byte for byte on every machine.
// The committed copies under examples/data/ were made with
//
//   make_corpus examples/data
//
// Usage: make_corpus [output folder, default .] [world bytes, default 200000]
//                    [recipe bytes, default 150000]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

// splitmix64: tiny, fast and fully specified.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // An integer in [lo, hi].
  int range(int lo, int hi) {
    return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool chance(int percent) { return range(1, 100) <= percent; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[next() % v.size()];
  }

 private:
  uint64_t s_;
};

using Words = std::vector<std::string>;

// 0..99 in words ("forty-two").
std::string number_word(int n) {
  static const char* ones[] = {"zero",    "one",     "two",       "three",    "four",
                               "five",    "six",     "seven",     "eight",    "nine",
                               "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                               "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
  static const char* tens[] = {"",      "",      "twenty",  "thirty", "forty",
                               "fifty", "sixty", "seventy", "eighty", "ninety"};
  if (n < 0 || n > 99) return std::to_string(n);
  if (n < 20) return ones[n];
  return std::string(tens[n / 10]) + (n % 10 ? std::string("-") + ones[n % 10] : "");
}

std::string capitalize(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

bool starts_with_vowel(const std::string& w) {
  return !w.empty() && std::string("aeiou").find(w[0]) != std::string::npos;
}
std::string with_article(const std::string& w) { return (starts_with_vowel(w) ? "an " : "a ") + w; }

// ---------------------------------------------------------------------------------------------
// world.txt

struct Thing {
  std::string one, many;
};

const std::vector<Thing> kThings = {
    {"apple", "apples"},   {"book", "books"},     {"cup", "cups"},         {"box", "boxes"},
    {"key", "keys"},       {"ball", "balls"},     {"lamp", "lamps"},       {"chair", "chairs"},
    {"pencil", "pencils"}, {"shoe", "shoes"},     {"clock", "clocks"},     {"basket", "baskets"},
    {"stone", "stones"},   {"letter", "letters"}, {"bottle", "bottles"},   {"coin", "coins"},
    {"plate", "plates"},   {"candle", "candles"}, {"flower", "flowers"},   {"map", "maps"},
    {"kite", "kites"},     {"hat", "hats"},       {"blanket", "blankets"}, {"egg", "eggs"},
    {"brush", "brushes"},  {"glass", "glasses"},  {"spoon", "spoons"},     {"bell", "bells"}};
const Words kColours = {"red",   "blue",  "green", "yellow", "white",
                        "black", "brown", "grey",  "orange"};
const Words kSizes = {"small", "large", "old", "new", "heavy", "light", "clean", "dusty"};
const Words kFurniture = {"table", "shelf", "desk", "bench", "bed", "floor", "window sill"};
const Words kRooms = {"kitchen", "hall", "bedroom", "garden", "attic", "cellar", "living room"};
const Words kPlaces = {"station", "market", "school", "library",     "bakery", "harbour", "park",
                       "bridge",  "church", "museum", "post office", "river",  "farm",    "hill"};
const Words kDirections = {"north", "south", "east", "west"};
const Words kPrepositions = {"on", "under", "next to", "behind", "near"};
struct Person {
  std::string name, subject, object, possessive;
};
const std::vector<Person> kPeople = {
    {"Anna", "she", "her", "her"},  {"Ben", "he", "him", "his"},   {"Clara", "she", "her", "her"},
    {"David", "he", "him", "his"},  {"Elsa", "she", "her", "her"}, {"Farid", "he", "him", "his"},
    {"Greta", "she", "her", "her"}, {"Hugo", "he", "him", "his"},  {"Ines", "she", "her", "her"},
    {"Jonas", "he", "him", "his"},  {"Kira", "she", "her", "her"}, {"Leo", "he", "him", "his"},
    {"Mira", "she", "her", "her"},  {"Nils", "he", "him", "his"},  {"Olga", "she", "her", "her"},
    {"Pablo", "he", "him", "his"}};
const Words kWeather = {"sunny", "cold", "windy", "warm", "rainy", "quiet", "bright", "grey"};
const Words kTimes = {"In the morning", "At noon",   "In the evening", "After lunch",
                      "Later",          "On Monday", "On Friday",      "Before dinner"};
const Words kVerbsGo = {"walked", "ran", "cycled", "went"};

std::string things(int n, const Thing& t) {
  return number_word(n) + " " + (n == 1 ? t.one : t.many);
}

// One sentence about `p` (and sometimes a second person `q`), from one of several templates.
std::string world_sentence(Rng& r, const Person& p, const Person& q) {
  const Thing& t = r.pick(kThings);
  const std::string& colour = r.pick(kColours);
  const std::string& size = r.pick(kSizes);
  switch (r.range(0, 12)) {
    case 0:
      return "The " + size + " " + colour + " " + t.one + " is " + r.pick(kPrepositions) + " the " +
             r.pick(kFurniture) + " in the " + r.pick(kRooms) + ".";
    case 1: {
      int a = r.range(2, 9), b = r.range(1, 9);
      return "There are " + things(a, t) + " on the " + r.pick(kFurniture) + " and " +
             number_word(b) + " more in the " + r.pick(kRooms) + ", so there are " +
             number_word(a + b) + " " + t.many + " in all.";
    }
    case 2: {
      int a = r.range(3, 12), b = r.range(1, a - 1);
      return p.name + " has " + things(a, t) + ". " + capitalize(p.subject) + " gives " +
             number_word(b) + " to " + q.name + ", and now " + p.subject + " has " +
             number_word(a - b) + ".";
    }
    case 3: {
      const std::string& from = r.pick(kPlaces);
      std::string to = r.pick(kPlaces);
      if (to == from) to = "town hall";
      return p.name + " " + r.pick(kVerbsGo) + " from the " + from + " to the " + to +
             ". It took " + p.object + " " + number_word(r.range(2, 20)) + " minutes.";
    }
    case 4: {
      const std::string& a = r.pick(kPlaces);
      std::string b = r.pick(kPlaces);
      if (a == b) b = "town hall";
      return "The " + a + " is " + r.pick(kDirections) + " of the " + b + ".";
    }
    case 5:
      return r.pick(kTimes) + " " + p.name + " found " + with_article(size + " " + t.one) + " " +
             r.pick(kPrepositions) + " the " + r.pick(kFurniture) + ".";
    case 6:
      return p.name + " put " + things(r.range(2, 9), t) + " in the " + r.pick(kRooms) +
             " and closed the door.";
    case 7:
      return "It was " + r.pick(kWeather) + " at the " + r.pick(kPlaces) + ", and " + p.name +
             " waited for " + q.name + " near the " + r.pick(kPlaces) + ".";
    case 8: {
      int a = r.range(2, 6), b = r.range(2, 5);
      return p.name + " bought " + number_word(a) + " bags with " + number_word(b) + " " + t.many +
             " in each bag, which is " + number_word(a * b) + " " + t.many + ".";
    }
    case 9:
      return "Is the " + t.one + " " + colour + "? " +
             (r.chance(50) ? "Yes, it is " + colour + "." : "No, it is " + r.pick(kColours) + ".");
    case 10:
      return q.name + " asked " + p.name + " where the " + t.many + " were, and " + p.subject +
             " said they were in the " + r.pick(kRooms) + ".";
    case 11:
      return p.name + " left " + p.possessive + " " + t.one + " at the " + r.pick(kPlaces) +
             ", and " + q.name + " brought it back.";
    default:
      return p.name + "'s " + t.one + " is " + colour + ", and " + q.name + "'s " + t.one + " is " +
             size + ".";
  }
}

std::string world_paragraph(Rng& r) {
  const Person& p = r.pick(kPeople);
  Person q = r.pick(kPeople);
  if (q.name == p.name) q = kPeople[(&p - kPeople.data() + 1) % kPeople.size()];
  std::string s;
  int n = r.range(3, 6);
  for (int i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += world_sentence(r, p, q);
  }
  return s + "\n\n";
}

// ---------------------------------------------------------------------------------------------
// recipes.txt

struct Ingredient {
  std::string one, many;  // "carrot", "carrots" (for uncounted ones both are the same: "rice")
  std::string unit;       // "" (counted), "cup", "spoon", "gram", "pinch", "handful"
  int lo, hi;             // amount range
  std::string prep;       // what is done to it first ("Peel and dice"), or ""
  std::string name() const { return many; }
};

struct Main {
  Ingredient item;
  Words dishes;  // what it can be made into
};

const std::vector<Main> kMains = {
    {{"carrot", "carrots", "", 2, 6, "Peel and slice"}, {"soup", "stew", "salad", "cake"}},
    {{"potato", "potatoes", "", 2, 5, "Peel and dice"}, {"soup", "stew", "salad", "bake"}},
    {{"tomato", "tomatoes", "", 3, 6, "Chop"}, {"soup", "salad", "bake", "risotto"}},
    {{"lentil", "lentils", "cup", 1, 2, "Rinse"}, {"soup", "stew", "salad"}},
    {{"mushroom", "mushrooms", "gram", 200, 400, "Slice"}, {"soup", "risotto", "bake", "pie"}},
    {{"pea", "peas", "cup", 1, 3, "Rinse"}, {"soup", "risotto", "salad"}},
    {{"leek", "leeks", "", 1, 3, "Wash and slice"}, {"soup", "pie", "bake"}},
    {{"bean", "beans", "cup", 1, 2, "Rinse"}, {"stew", "salad", "soup"}},
    {{"pumpkin", "pumpkin", "gram", 300, 600, "Peel and cube"}, {"soup", "risotto", "pie", "cake"}},
    {{"spinach", "spinach", "gram", 100, 300, "Wash"}, {"salad", "pie", "bake"}},
    {{"apple", "apples", "", 2, 5, "Core and slice"}, {"pie", "cake", "crumble"}},
    {{"pear", "pears", "", 2, 4, "Core and slice"}, {"pie", "cake", "crumble"}},
    {{"plum", "plums", "", 4, 8, "Halve and stone"}, {"cake", "crumble"}},
    {{"cabbage", "cabbage", "gram", 300, 500, "Shred"}, {"soup", "stew", "salad"}},
    {{"onion", "onions", "", 3, 5, "Slice"}, {"soup", "pie", "bake"}}};
const std::vector<Ingredient> kSavoury = {{"onion", "onion", "", 1, 1, "Chop"},
                                          {"garlic clove", "garlic cloves", "", 2, 4, "Crush"},
                                          {"butter", "butter", "spoon", 1, 3, ""},
                                          {"olive oil", "olive oil", "spoon", 1, 3, ""},
                                          {"salt", "salt", "pinch", 1, 2, ""},
                                          {"pepper", "pepper", "pinch", 1, 2, ""},
                                          {"lemon", "lemon", "", 1, 1, "Squeeze"},
                                          {"cheese", "cheese", "gram", 50, 150, "Grate"},
                                          {"parsley", "parsley", "handful", 1, 1, "Chop"},
                                          {"thyme", "thyme", "spoon", 1, 1, ""},
                                          {"cream", "cream", "cup", 1, 1, ""}};
const std::vector<Ingredient> kSweet = {
    {"butter", "butter", "spoon", 2, 5, ""}, {"flour", "flour", "cup", 1, 3, ""},
    {"sugar", "sugar", "spoon", 2, 6, ""},   {"egg", "eggs", "", 1, 3, ""},
    {"milk", "milk", "cup", 1, 2, ""},       {"honey", "honey", "spoon", 1, 2, ""},
    {"lemon", "lemon", "", 1, 1, "Zest"},    {"cinnamon", "cinnamon", "pinch", 1, 2, ""},
    {"cream", "cream", "cup", 1, 1, ""}};
const Words kTitleWords = {"Simple",    "Country", "Quick",  "Winter", "Summer", "Garden",
                           "Grandma's", "Golden",  "Sunday", "Rustic", "Easy",   "Warm"};
const Words kPots = {"a large pot", "a deep pan", "a heavy pot", "a wide pan"};

std::string amount(Rng& r, const Ingredient& g) {
  int n = g.lo + (g.hi > g.lo ? r.range(0, g.hi - g.lo) : 0);
  if (g.unit == "gram") n = n / 50 * 50;
  if (g.unit.empty()) return std::to_string(n) + " " + (n == 1 ? g.one : g.many);
  if (g.unit == "gram") return std::to_string(n) + " grams of " + g.many;
  std::string unit = g.unit;
  if (n > 1) unit += (unit == "pinch" || unit == "handful" ? (unit == "pinch" ? "es" : "s") : "s");
  return std::to_string(n) + " " + unit + " of " + g.many;
}

std::string recipe(Rng& r, int number) {
  const Main& m = r.pick(kMains);
  const Ingredient& main = m.item;
  const std::string& dish = r.pick(m.dishes);
  bool sweet = dish == "cake" || dish == "crumble" || (dish == "pie" && main.many == "apples") ||
               (dish == "pie" && main.many == "pears");
  const std::vector<Ingredient>& pool = sweet ? kSweet : kSavoury;
  std::vector<const Ingredient*> extras;
  int n_extra = r.range(2, 5);
  while (static_cast<int>(extras.size()) < n_extra) {
    const Ingredient* e = &r.pick(pool);
    bool dup = e->many == main.many;
    for (auto* x : extras) dup = dup || x == e;
    if (!dup) extras.push_back(e);
  }
  std::string s = "Recipe " + std::to_string(number) + ": " + r.pick(kTitleWords) + " " + main.one +
                  " " + dish + "\n";
  int minutes = dish == "salad" ? 5 * r.range(2, 5) : 5 * r.range(6, 16);
  s += "Serves " + std::to_string(r.range(2, 8)) + ". Ready in " + std::to_string(minutes) +
       " minutes.\n";
  s += "Ingredients:\n- " + amount(r, main) + "\n";
  for (auto* e : extras) s += "- " + amount(r, *e) + "\n";
  s += "Steps:\n";
  int step = 0;
  auto add = [&](const std::string& line) { s += std::to_string(++step) + ". " + line + "\n"; };
  add(main.prep + " the " + main.name() + ".");
  for (auto* e : extras)
    if (!e->prep.empty() && r.chance(70)) add(e->prep + " the " + e->name() + ".");
  const Ingredient* fat = nullptr;
  for (auto* e : extras)
    if (e->many == "butter" || e->many == "olive oil") fat = e;
  int heat = 5 * r.range(1, 4);
  if (dish == "soup" || dish == "stew" || dish == "risotto") {
    add("Heat " + (fat ? "the " + fat->name() : std::string("a little water")) + " in " +
        r.pick(kPots) + " over medium heat.");
    add("Add the " + main.name() + " and cook for " + std::to_string(heat) +
        " minutes, stirring now and then.");
    if (dish == "risotto") add("Stir in 1 cup of rice and cook for 2 minutes.");
    add("Pour in " + std::to_string(r.range(2, 6)) + " cups of " +
        (r.chance(50) ? "water" : "stock") + " and bring to a boil.");
    add("Simmer for " + std::to_string(minutes / 2) + " minutes" +
        (dish == "soup" && r.chance(50) ? ", then blend until smooth." : "."));
  } else if (dish == "salad") {
    add("Put the " + main.name() + " in a wide bowl.");
    add("Mix the " + extras[0]->name() + " and the " + extras[1]->name() + " in a cup.");
    add("Pour the dressing over the " + main.name() + " and toss well.");
    add("Let it rest for " + std::to_string(heat) + " minutes before serving.");
  } else {
    int oven = 10 * r.range(16, 22);
    add("Heat the oven to " + std::to_string(oven) + " degrees.");
    if (dish == "crumble") {
      add("Put the " + main.name() + " in a buttered dish.");
      add("Rub the " + extras[0]->name() + " into the " + extras[1]->name() +
          " and scatter it over the fruit.");
    } else if (sweet) {
      add("Beat the " + extras[0]->name() + " with the " + extras[1]->name() + " until light.");
      add("Fold in the " + main.name() + " and spread the mix in a buttered tin.");
    } else {
      add("Layer the " + main.name() + " in a baking dish with the " + extras[0]->name() + ".");
      add("Cover with the " + extras[1]->name() + ".");
    }
    add("Bake for " + std::to_string(minutes - 10 > 10 ? minutes - 10 : 15) +
        " minutes, until golden on top.");
  }
  for (auto* e : extras)
    if (e->many == "salt" || e->many == "pepper" || e->many == "parsley") {
      add("Season with the " + e->name() + " and taste.");
      break;
    }
  add(sweet ? r.pick(Words{"Serve warm with cream.", "Let it cool before cutting.",
                           "Serve at once.", "Keep in a tin for up to three days."})
            : r.pick(Words{"Serve warm.", "Serve at once.", "Serve with fresh bread.",
                           "Serve cold the next day."}));
  return s + "\n";
}

// Writes paragraphs from `make` until the file has at least `bytes` bytes.
template <class F>
void write_corpus(const std::filesystem::path& path, size_t bytes, F make) {
  std::string text;
  while (text.size() < bytes) text += make();
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) {
    std::fprintf(stderr, "make_corpus: cannot write '%s'\n", path.c_str());
    std::exit(1);
  }
  std::printf("wrote %s (%zu bytes)\n", path.c_str(), text.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path dir = argc > 1 ? argv[1] : ".";
  size_t world_bytes = argc > 2 ? std::stoul(argv[2]) : 200000;
  size_t recipe_bytes = argc > 3 ? std::stoul(argv[3]) : 150000;
  std::filesystem::create_directories(dir);
  Rng world_rng(20240501);
  write_corpus(dir / "world.txt", world_bytes, [&] { return world_paragraph(world_rng); });
  Rng recipe_rng(20240502);
  int number = 0;
  write_corpus(dir / "recipes.txt", recipe_bytes, [&] { return recipe(recipe_rng, ++number); });
  return 0;
}
