package dev.tfpipe.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

class JsonTest {
    @Test
    fun readsWhatPythonsJsonModuleWrites() {
        val value = Json.parse("""{"a": [1, -2.5, 1e-3, 0.007843137718737125], "b": {"c": "x\"\u00e9\n"}, "d": [true, false, null], "e": []}""")
        val f = Fields.of(value, "t")
        assertEquals(listOf(1.0, -2.5, 0.001, 0.007843137718737125), f.list("a"))
        assertEquals("x\"é\n", f.obj("b").string("c"))
        assertEquals(listOf(true, false, null), f.list("d"))
        assertEquals(0, f.list("e").size)
        // a float32 written by Python comes back as the same float32
        assertEquals(0.007843138f, f.doubles("a")[3].toFloat())
    }

    @Test
    fun badTextNamesTheFileAndTheLine() {
        val e = assertThrows(BundleError::class.java) { Json.parse("{\n  \"a\": 1,\n  \"b\": tru\n}", "model.json") }
        assertTrue(e.message!!, e.message!!.startsWith("model.json: not valid JSON at line 3"))
        for (bad in listOf("", "[1,]", "{\"a\" 1}", "01", "1.", "[1] 2", "\"open", "NaN", "{\"a\": -}")) {
            assertThrows(bad, BundleError::class.java) { Json.parse(bad) }
        }
    }

    @Test
    fun wrongFieldsAreNamedWithWhatIsAccepted() {
        val f = Fields.of(Json.parse("""{"n": "three", "k": 1.5}"""), "model.json")
        assertEquals("model.json: field 'n' is the string \"three\", expected a number",
            assertThrows(BundleError::class.java) { f.double("n") }.message)
        assertEquals("model.json: field 'k' is the number 1.5, expected an integer",
            assertThrows(BundleError::class.java) { f.int("k") }.message)
        assertEquals("model.json: missing field 'z'", assertThrows(BundleError::class.java) { f.string("z") }.message)
    }
}
