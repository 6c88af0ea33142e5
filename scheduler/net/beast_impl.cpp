// The one translation unit that compiles Asio, Asio-SSL and Beast. Every other file includes their
// headers only, with `BOOST_ASIO_SEPARATE_COMPILATION` and `BOOST_BEAST_SEPARATE_COMPILATION` set
// by the `gsched_options` target, so the machines' 2 cores build Beast once, not once per file.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
