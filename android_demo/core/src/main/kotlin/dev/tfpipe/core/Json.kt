package dev.tfpipe.core

/**
 * A small strict JSON reader (RFC 8259), so the core stays free of Android's org.json and of any
 * third-party library: objects become LinkedHashMap<String, Any?> (key order kept), arrays
 * ArrayList<Any?>, numbers Double, and true/false/null themselves.
 *
 * model.json and the golden vectors are the only inputs; both are written by Python's json module.
 */
object Json {
    fun parse(text: String, source: String = "JSON"): Any? {
        val reader = Reader(text, source)
        reader.skipSpace()
        val value = reader.value()
        reader.skipSpace()
        if (reader.pos != text.length) reader.fail("unexpected text after the value")
        return value
    }

    private class Reader(val text: String, val source: String) {
        var pos = 0

        fun fail(what: String): Nothing {
            val line = 1 + text.substring(0, minOf(pos, text.length)).count { it == '\n' }
            throw BundleError("$source: not valid JSON at line $line (character ${pos + 1}): $what")
        }

        fun skipSpace() {
            while (pos < text.length && text[pos] in " \t\r\n") pos++
        }

        fun value(): Any? {
            if (pos >= text.length) fail("the text ends where a value should be")
            return when (val c = text[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c == '-' || c in '0'..'9') number() else fail("'$c' does not start a value")
            }
        }

        private fun literal(word: String, value: Any?): Any? {
            if (!text.startsWith(word, pos)) fail("expected $word")
            pos += word.length
            return value
        }

        private fun obj(): Map<String, Any?> {
            val out = LinkedHashMap<String, Any?>()
            pos++
            skipSpace()
            if (text.getOrNull(pos) == '}') { pos++; return out }
            while (true) {
                skipSpace()
                if (text.getOrNull(pos) != '"') fail("expected a quoted key")
                val key = string()
                skipSpace()
                if (text.getOrNull(pos) != ':') fail("expected ':' after the key \"$key\"")
                pos++
                skipSpace()
                out[key] = value()
                skipSpace()
                when (text.getOrNull(pos)) {
                    ',' -> pos++
                    '}' -> { pos++; return out }
                    else -> fail("expected ',' or '}' in an object")
                }
            }
        }

        private fun array(): List<Any?> {
            val out = ArrayList<Any?>()
            pos++
            skipSpace()
            if (text.getOrNull(pos) == ']') { pos++; return out }
            while (true) {
                skipSpace()
                out.add(value())
                skipSpace()
                when (text.getOrNull(pos)) {
                    ',' -> pos++
                    ']' -> { pos++; return out }
                    else -> fail("expected ',' or ']' in an array")
                }
            }
        }

        private fun string(): String {
            val out = StringBuilder()
            pos++
            while (true) {
                if (pos >= text.length) fail("a string is not closed")
                val c = text[pos++]
                when {
                    c == '"' -> return out.toString()
                    c == '\\' -> {
                        if (pos >= text.length) fail("a string is not closed")
                        when (val e = text[pos++]) {
                            '"', '\\', '/' -> out.append(e)
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000C')
                            'n' -> out.append('\n')
                            'r' -> out.append('\r')
                            't' -> out.append('\t')
                            'u' -> {
                                val hex = text.substring(pos, minOf(pos + 4, text.length))
                                val code = hex.takeIf { it.length == 4 }?.toIntOrNull(16) ?: fail("bad \\u escape")
                                out.append(code.toChar())
                                pos += 4
                            }
                            else -> fail("bad escape \\$e")
                        }
                    }
                    c < ' ' -> fail("a control character inside a string")
                    else -> out.append(c)
                }
            }
        }

        private fun number(): Double {
            val start = pos
            fun digits(): Int {
                val from = pos
                while (pos < text.length && text[pos] in '0'..'9') pos++
                return pos - from
            }
            if (text[pos] == '-') pos++
            if (text.getOrNull(pos) == '0') pos++ else if (digits() == 0) fail("bad number")
            if (text.getOrNull(pos) == '.') { pos++; if (digits() == 0) fail("bad number") }
            if (text.getOrNull(pos) == 'e' || text.getOrNull(pos) == 'E') {
                pos++
                if (text.getOrNull(pos) == '+' || text.getOrNull(pos) == '-') pos++
                if (digits() == 0) fail("bad number")
            }
            // Python writes NaN and Infinity outside the standard; neither is accepted here
            return text.substring(start, pos).toDouble()
        }
    }
}

/** A model.json or golden file that cannot be used: the message names the file and the field. */
class BundleError(message: String) : IllegalArgumentException(message)

/** Typed reads of a parsed JSON object, each naming `where` (file and path) when the field is wrong. */
@Suppress("UNCHECKED_CAST")  // JSON objects are Map<String, Any?> by construction (Json.parse)
class Fields(private val map: Map<String, Any?>, val where: String) {
    fun has(key: String) = key in map

    fun raw(key: String): Any? = if (key in map) map[key] else throw BundleError("$where: missing field '$key'")

    fun string(key: String): String = raw(key) as? String ?: wrong(key, "a string")

    fun double(key: String): Double = (raw(key) as? Double) ?: wrong(key, "a number")

    fun int(key: String): Int {
        val d = double(key)
        if (d != Math.floor(d) || d < Int.MIN_VALUE || d > Int.MAX_VALUE) wrong(key, "an integer")
        return d.toInt()
    }

    fun obj(key: String): Fields = Fields(raw(key) as? Map<String, Any?> ?: wrong(key, "an object"), "$where.$key")

    fun list(key: String): List<Any?> = raw(key) as? List<Any?> ?: wrong(key, "a list")

    fun strings(key: String): List<String> = list(key).map { it as? String ?: wrong(key, "a list of strings") }

    fun doubles(key: String): DoubleArray {
        val items = list(key)
        return DoubleArray(items.size) { (items[it] as? Double) ?: wrong(key, "a list of numbers") }
    }

    fun ints(key: String): IntArray = doubles(key).map { it.toInt() }.toIntArray()

    fun keys(): Set<String> = map.keys

    fun wrong(key: String, accepted: String): Nothing =
        throw BundleError("$where: field '$key' is ${describe(map[key])}, expected $accepted")

    private fun describe(v: Any?) = when (v) {
        null -> "null"
        is String -> "the string \"${v.take(40)}\""
        is Double -> "the number $v"
        is Boolean -> "$v"
        is List<*> -> "a list"
        else -> "an object"
    }

    companion object {
        fun of(value: Any?, where: String): Fields =
            Fields(value as? Map<String, Any?> ?: throw BundleError("$where: expected a JSON object"), where)
    }
}
